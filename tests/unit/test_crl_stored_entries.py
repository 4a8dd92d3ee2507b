"""CRL entries encoded from the rows the inventory stores (``crls.encode_stored_entries``,
the cache refill after a bulk import): byte for byte what ``entry_for`` encodes from
the datetime SQLAlchemy reads, and what cryptography encodes."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import DateTime
from sqlalchemy.dialects import sqlite

from mtlskit.publish import crl as crlmod
from mtlskit.publish import crls
from mtlskit.revoke.reasons import RevocationReason
from tests.support_crl import NOW, make_ca

UTC = dt.timezone.utc
# How SQLAlchemy's SQLite DateTime writes a datetime ('YYYY-MM-DD HH:MM:SS.ffffff')
_STORE = DateTime(timezone=True).dialect_impl(sqlite.dialect()).bind_processor(sqlite.dialect())

REASONS = [None, *(r.value for r in RevocationReason), "keyCompromise", "KEY_COMPROMISE",
           "a word this version does not know", ""]


@pytest.fixture(autouse=True)
def _fast_path(monkeypatch):
    """This module holds the fast path to entry_for's hand-written encoding, including
    times before 1950 that cryptography's builder refuses; test_reference_encoders.py
    compares it with the reference, also under MTLSKIT_REFERENCE_ENCODERS=1."""
    monkeypatch.setenv("MTLSKIT_REFERENCE_ENCODERS", "0")


def _serials() -> list[int]:
    """1 to 20 octets, each with and without the high bit of its first octet, and the
    edges of the one-octet lengths."""
    found = [1, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, (1 << 159) - 1, 1 << 158, (1 << 159) | 5]
    for octets in range(1, 21):
        found += [1 << (8 * octets - 2), 1 << (8 * octets - 1), (1 << (8 * octets)) - 1, 1 << (8 * (octets - 1))]
    return found


TIMES = [
    dt.datetime(2026, 5, 1, 12, 30, 45),
    dt.datetime(2026, 5, 1, 12, 30, 45, 999999),  # fractions are dropped, not rounded
    dt.datetime(1950, 1, 1, 0, 0, 0),              # first UTCTime (RFC 5280 4.1.2.5.1)
    dt.datetime(1949, 12, 31, 23, 59, 59),         # before it: GeneralizedTime
    dt.datetime(2049, 12, 31, 23, 59, 59, 500000),  # last UTCTime
    dt.datetime(2050, 1, 1, 0, 0, 0),              # GeneralizedTime from 2050 (4.1.2.5.2)
    dt.datetime(9999, 12, 31, 23, 59, 59),
    dt.datetime(2000, 2, 29, 1, 2, 3),
]


def _texts(moment: dt.datetime) -> list[str]:
    """The forms a naive-UTC ``moment`` is found stored in: SQLAlchemy's, and
    ``isoformat(" ")`` of the aware datetime (a bulk import by SQL)."""
    aware = moment.replace(tzinfo=UTC)
    return [_STORE(moment), _STORE(aware), aware.isoformat(" "), moment.isoformat(" ")]


def _expected(serial_hex: str, when, reason) -> bytes:
    """The entry as the refill encoded it before: SQLAlchemy's reading of the stored
    text (``datetime.fromisoformat``), taken as UTC when naive, through ``entry_for``."""
    if not isinstance(when, dt.datetime):
        when = dt.datetime.fromisoformat(when)
    return crls.entry_for(int(serial_hex, 16), crls._utc(when), reason)


def _common_rows() -> list[tuple]:
    rng = random.Random(5280)
    rows = []
    for serial in _serials():
        for moment in TIMES:
            for text in _texts(moment):
                rows.append((format(serial, "x"), text, rng.choice(REASONS)))
    for reason in REASONS:
        rows.append(("1234abc", _STORE(dt.datetime(2026, 1, 2, 3, 4, 5)), reason))
    return rows


def test_common_rows_match_entry_for_byte_for_byte():
    rows = _common_rows()
    assert crls.encode_stored_entries(rows) == [_expected(*row) for row in rows]


def test_common_rows_do_not_need_entry_for(monkeypatch):
    """The rows above are the fast path's own (the comparison above is not entry_for
    against itself)."""
    rows = _common_rows()
    expected = [_expected(*row) for row in rows]

    def refuse(*_args):
        raise AssertionError("entry_for called for a common row")

    monkeypatch.setattr(crls, "entry_for", refuse)
    assert crls.encode_stored_entries(rows) == expected


def test_common_rows_match_cryptography():
    """The same entries, concatenated, are the revokedCertificates cryptography writes."""
    cert, key = make_ca("ed25519")
    # (cryptography refuses revocation dates before 1950 and serials of more than 20 octets)
    rows = [row for row in _common_rows() if dt.datetime.fromisoformat(row[1]).year >= 1950
            and int(row[0], 16).bit_length() <= 159][::5]
    assert {row[1][:4] for row in rows} >= {"1950", "2049", "2050", "9999"}
    builder = (x509.CertificateRevocationListBuilder().issuer_name(cert.subject)
               .last_update(NOW).next_update(NOW + dt.timedelta(days=7)))
    for serial_hex, text, reason in rows:
        entry = (x509.RevokedCertificateBuilder().serial_number(int(serial_hex, 16))
                 .revocation_date(crls._utc(dt.datetime.fromisoformat(text))))
        flag = crls._flag(reason)
        if flag is not None and flag is not x509.ReasonFlags.unspecified:
            entry = entry.add_extension(x509.CRLReason(flag), critical=False)
        builder = builder.add_revoked_certificate(entry.build())
    reference = builder.sign(key, None).public_bytes(Encoding.DER)
    assert b"".join(crls.encode_stored_entries(rows)) == crlmod.revoked_entries_content(reference)


@pytest.mark.parametrize("octets", [60, 90, 95, 96, 100, 126, 127, 128, 200])
def test_entries_too_long_for_one_octet_lengths_match_entry_for(octets):
    """Far longer serials than RFC 5280 allows, as something else may have stored them:
    the entry, or its serial, needs a long-form length (X.690 8.1.3.5)."""
    rows = [(format((1 << (8 * octets - 1)) | 12345, "x"), text, reason)
            for text in _texts(dt.datetime(2026, 5, 1, 12, 30, 45)) + _texts(dt.datetime(2050, 5, 1))
            for reason in REASONS]
    assert crls.encode_stored_entries(rows) == [_expected(*row) for row in rows]


@pytest.mark.parametrize("serial_hex", [
    "ABCDEF",             # upper case (int() reads it; mtlskit writes lower case)
    "00ab",               # leading zeros: int() drops them
    "0abc",
    "f" * 200,            # 100 octets: long-form lengths (X.690 8.1.3.5)
    "+7f",                # a sign int() accepts
    "7f_ff",              # an underscore int() accepts
    " abcdef ",           # outer spaces int() accepts
])
@pytest.mark.parametrize("when", [
    "2026-05-01 12:30:45+05:30",    # an offset: converted to UTC
    "2049-12-31 20:00:00-08:00",    # ... across the UTCTime/GeneralizedTime boundary
    "2026-05-01T12:30:45",          # another separator
    "2026-05-01",                   # a date alone
    "2026-05-01 12:30",             # no seconds
    dt.datetime(2026, 5, 1, 12, 30, 45),                 # datetimes (a driver other than sqlite3)
    dt.datetime(2026, 5, 1, 12, 30, 45, tzinfo=dt.timezone(dt.timedelta(hours=-3))),
])
def test_other_rows_are_encoded_as_entry_for_does(serial_hex, when):
    rows = [(serial_hex, when, reason) for reason in REASONS]
    assert crls.encode_stored_entries(rows) == [_expected(*row) for row in rows]


@pytest.mark.parametrize("serial_hex, when, error", [
    ("0", "2026-05-01 12:30:45", ValueError),        # serials are positive (RFC 5280 4.1.2.2)
    ("-5", "2026-05-01 12:30:45", ValueError),
    ("", "2026-05-01 12:30:45", ValueError),
    ("ab cd", "2026-05-01 12:30:45", ValueError),     # int() refuses inner spaces (fromhex would not)
    ("ab cd ef", "2026-05-01 12:30:45", ValueError),
    ("xyz", "2026-05-01 12:30:45", ValueError),
    ("ab", "2026-13-01 12:30:45", ValueError),        # no such month
    ("ab", "2026-02-30 12:30:45", ValueError),        # no such day
    ("ab", "2026-05-01 24:30:45", ValueError),
    ("ab", "2026-05-01 12:30:45 junk", ValueError),
    ("ab", None, TypeError),
    ("ab", b"2026-05-01 12:30:45", TypeError),
])
def test_rows_entry_for_refuses_are_refused_alike(serial_hex, when, error):
    with pytest.raises(error):
        _expected(serial_hex, when, None)
    with pytest.raises(error):
        crls.encode_stored_entries([(serial_hex, when, None)])


def test_random_rows_match_entry_for():
    rng = random.Random(7468)
    rows = []
    for _ in range(3000):
        serial = rng.getrandbits(rng.randint(1, 160)) or 1
        moment = dt.datetime(1900, 1, 1) + dt.timedelta(seconds=rng.randrange(0, 250 * 365 * 86400),
                                                         microseconds=rng.randrange(0, 10**6))
        text = rng.choice(_texts(moment) + [moment.replace(tzinfo=UTC).astimezone(
            dt.timezone(dt.timedelta(minutes=rng.randrange(-900, 900)))).isoformat(" ")])
        rows.append((format(serial, "x"), text, rng.choice(REASONS)))
    assert crls.encode_stored_entries(rows) == [_expected(*row) for row in rows]
