"""The CRL entry cache refilled after revocations written behind mtlskit's back (a bulk
import by SQL): a real CA home and SQLite inventory, rows stored in the text forms
SQLAlchemy and other writers use, entries compared with what ``entry_for`` encodes
from the datetimes SQLAlchemy 2 read (``datetime.fromisoformat`` of the stored text)."""

from __future__ import annotations

import datetime as dt
import random
import sqlite3

import pytest
from cryptography import x509
from mtlskit.publish import crls
from mtlskit.publish.crl import revoked_entries_content
from mtlskit.store import sql
from tests.support_crl import make_home, no_passphrase, open_service

REASONS = [None, "unspecified", "key-compromise", "superseded", "certificate-hold",
           "privilege-withdrawn", "keyCompromise", "no-such-reason"]
UTC = dt.timezone.utc


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return make_home(tmp_path_factory.mktemp("refill"))


def _stored_forms(moment: dt.datetime, rng: random.Random) -> str:
    """``moment`` (aware) in one of the text forms found in the revoked_at column."""
    naive = moment.astimezone(UTC).replace(tzinfo=None)
    return rng.choice([
        naive.isoformat(" ", "microseconds"),        # SQLAlchemy's SQLite DateTime
        naive.replace(microsecond=0).isoformat(" "),
        moment.astimezone(UTC).isoformat(" "),       # isoformat(" ") of an aware datetime
        moment.astimezone(dt.timezone(dt.timedelta(hours=5, minutes=30))).isoformat(" "),
        naive.isoformat("T"),
    ])


def _bulk_import(home, count: int, seed: int) -> None:
    """``count`` revoked certificates of the intermediate CA inserted with plain SQL,
    in an order unrelated to their serials; a few without revoked_at (not_after is used)."""
    rng = random.Random(seed)
    now = dt.datetime(2026, 11, 22, 6, 0, tzinfo=UTC)
    rows = []
    for i in range(count):
        # short serials (unique per seed) among random ones of up to 20 octets
        serial = 16 * i + seed if i % 10 == 0 else rng.getrandbits(rng.choice([63, 64, 127, 159])) | 1 << 20
        moment = now - dt.timedelta(seconds=rng.randrange(0, 400 * 86400), microseconds=rng.randrange(10**6))
        if i % 50 == 7:
            moment += dt.timedelta(days=9000)  # past 2049: GeneralizedTime
        revoked_at = None if i % 97 == 3 else _stored_forms(moment, rng)
        rows.append(("intermediate", format(serial, "x"), f"bulk-{seed}-{i}", "CN=x", "[]", "client",
                     "ec-p256", "2026-01-01 00:00:00.000000", _stored_forms(moment, rng), "revoked",
                     revoked_at, rng.choice(REASONS), f"{seed:08x}{i:056x}", "-", "2026-01-01 00:00:00"))
    db = sqlite3.connect(home / "inventory.db")
    with db:
        db.executemany("INSERT INTO certificates (issuer, serial, name, subject, sans, profile, key_type,"
                       " not_before, not_after, status, revoked_at, revocation_reason, fingerprint_sha256,"
                       " pem, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    db.close()


def _expected(tx) -> dict[str, bytes]:
    """Serial -> entry, as the refill encoded them before: each stored text read into a
    datetime (as SQLAlchemy 2's SQLite DateTime did: ``datetime.fromisoformat``) and
    encoded by ``entry_for``."""
    rows = tx.all("SELECT serial, revoked_at, revocation_reason, not_after FROM certificates"
                  " WHERE issuer = 'intermediate' AND status = 'revoked'")
    return {serial: crls.entry_for(int(serial, 16), crls._utc(dt.datetime.fromisoformat(revoked_at or not_after)),
                                   reason)
            for serial, revoked_at, reason, not_after in rows}


class _Rollback(Exception):
    pass


def test_published_crl_after_a_bulk_import_has_the_entries_entry_for_encodes(home):
    _bulk_import(home, 1500, seed=1)
    service = open_service(home)
    authority = service.authority(no_passphrase)
    der = crls.publish(service, authority, ["intermediate"]).ders["intermediate"]
    with service.inventory.transaction() as session:
        expected = _expected(session)
        cached = session.all("SELECT serial, der, typeof(der) FROM crl_entries"
                             " WHERE issuer = 'intermediate' ORDER BY serial")
    ordered = sorted(expected)
    assert len(ordered) == 1500
    # the CRL lists them in stored-serial order, each as entry_for encodes it
    assert revoked_entries_content(der) == b"".join(expected[s] for s in ordered)
    # and the cache holds them as BLOBs
    assert [(s, d) for s, d, _ in cached] == [(s, expected[s]) for s in ordered]
    assert {kind for _, _, kind in cached} == {"blob"}
    crl = x509.load_der_x509_crl(der)
    assert len(crl) == 1500 and crl.is_signature_valid(service.ca_certificates()["intermediate"].public_key())


def test_refill_in_small_chunks_and_through_core_gives_the_same_entries(home, monkeypatch):
    """The chunking does not change the result, nor does the portable path other
    databases take (all rows, sorted in Python), run here on SQLite by giving the
    transaction's dialect another name."""
    _bulk_import(home, 700, seed=2)
    service = open_service(home)
    cached = "SELECT der FROM crl_entries WHERE issuer = 'intermediate' ORDER BY serial"
    with pytest.raises(_Rollback), service.inventory.transaction() as session:
        expected = _expected(session)
        wanted = [expected[s] for s in sorted(expected)]
        session.execute("PRAGMA threads = 0")
        assert crls._reencode_entries(session, "intermediate") == wanted
        assert session.scalar("PRAGMA threads") == 0  # the sorter's helper thread is given back
        assert crls._reencode_entries(session, "intermediate", chunk=97) == wanted
        assert [der for (der,) in session.all(cached)] == wanted
        raise _Rollback
    other = open_service(home)
    monkeypatch.setattr(sql.Tx, "dialect", property(lambda self: "another-database"))
    with other.inventory.transaction() as session:
        assert session.dialect == "another-database"
        assert crls._reencode_entries(session, "intermediate", chunk=200) == wanted
        assert [der for (der,) in session.all(cached)] == wanted


def test_a_row_entry_for_refuses_fails_the_refill_and_keeps_the_cache(home):
    """A revocation time that is no date fails publishing as it did (nothing half-written)."""
    service = open_service(home)
    authority = service.authority(no_passphrase)
    crls.publish(service, authority, ["intermediate"])
    with service.inventory.read() as session:
        before = session.scalar("SELECT count(*) FROM crl_entries")
    db = sqlite3.connect(home / "inventory.db")
    with db:
        db.execute("INSERT INTO certificates (issuer, serial, name, subject, sans, profile, key_type, not_before,"
                   " not_after, status, revoked_at, revocation_reason, fingerprint_sha256, pem, created_at)"
                   " VALUES ('intermediate', 'abc123', 'broken', 'CN=x', '[]', 'client', 'ec-p256',"
                   " '2026-01-01 00:00:00', '2027-01-01 00:00:00', 'revoked', '2026-02-30 10:00:00',"
                   " 'superseded', 'f00d', '-', '2026-01-01 00:00:00')")
    db.close()
    with pytest.raises(ValueError):
        crls.publish(service, authority, ["intermediate"])
    with pytest.raises(_Rollback), service.inventory.transaction() as session:  # failing midway,
        session.execute("PRAGMA threads = 0")                                    # the cursor is closed at once
        with pytest.raises(ValueError) as caught:
            crls._reencode_entries(session, "intermediate", chunk=10)
        # (``caught`` holds the traceback, and with it the frames of the refill)
        assert session.scalar("PRAGMA threads") == 0 and caught.value
        raise _Rollback
    with service.inventory.transaction() as session:
        assert session.scalar("SELECT count(*) FROM crl_entries") == before
        session.execute("DELETE FROM certificates WHERE name = 'broken'")
