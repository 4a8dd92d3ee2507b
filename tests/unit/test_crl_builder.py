"""The DER CRL builder: primitives against X.690 vectors, whole CRLs against
cryptography's own builder (byte for byte), its parser and pkilint."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from mtlskit.ca.signer import Signer
from mtlskit.errors import BadInput
from mtlskit.pki import signing
from mtlskit.pki import der as pkider
from mtlskit.pki.extensions import authority_key_identifier
from mtlskit.publish import crl as crlmod
from tests.support_crl import NOW, hash_for, make_ca, pkilint_crl_findings

DAY = dt.timedelta(days=1)


def test_entry_omits_reason_code_for_unspecified():
    plain = crlmod.encode_entry(0x1234, NOW, x509.ReasonFlags.unspecified)
    assert plain == crlmod.encode_entry(0x1234, NOW, None)
    assert b"\x55\x1d\x15" not in plain  # no 2.5.29.21
    with_reason = crlmod.encode_entry(0x1234, NOW, x509.ReasonFlags.key_compromise)
    assert b"\x06\x03\x55\x1d\x15\x04\x03\x0a\x01\x01" in with_reason


def test_entry_refuses_non_positive_serial():
    with pytest.raises(ValueError):
        crlmod.encode_entry(0, NOW, None)


def _reference_crl(cert, key, number, entries):
    """The same CRL built with cryptography's (slow) builder."""
    builder = (x509.CertificateRevocationListBuilder()
               .issuer_name(cert.subject).last_update(NOW).next_update(NOW + 7 * DAY)
               .add_extension(authority_key_identifier(cert), critical=False)
               .add_extension(x509.CRLNumber(number), critical=False))
    for serial, when, reason in entries:
        entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when)
        if reason is not None and reason is not x509.ReasonFlags.unspecified:
            entry = entry.add_extension(x509.CRLReason(reason), critical=False)
        builder = builder.add_revoked_certificate(entry.build())
    return builder.sign(key, hash_for(key))


ENTRIES = [
    (1, NOW - DAY, None),
    (x509.random_serial_number(), NOW - 2 * DAY, x509.ReasonFlags.key_compromise),
    ((1 << 158) | 12345, NOW - 3 * DAY, x509.ReasonFlags.unspecified),
    (0x80, NOW - 4 * DAY, x509.ReasonFlags.privilege_withdrawn),
    (77, dt.datetime(2051, 1, 1, tzinfo=dt.timezone.utc), x509.ReasonFlags.certificate_hold),
] + [(1000 + i, NOW - i * DAY, reason) for i, reason in enumerate(crlmod.REASON_CODES)]


@pytest.mark.parametrize("kind", ["ec-p256", "ec-p384", "rsa-2048", "ed25519"])
@pytest.mark.parametrize("entries", [[], ENTRIES], ids=["empty", "entries"])
def test_tbs_matches_cryptography_byte_for_byte(kind, entries):
    cert, key = make_ca(kind)
    reference = _reference_crl(cert, key, 42, entries)
    ours = crlmod.build_crl(Signer("t", cert, key), 42, NOW, NOW + 7 * DAY,
                            [crlmod.encode_entry(*e) for e in entries])
    loaded = x509.load_der_x509_crl(ours)
    assert loaded.tbs_certlist_bytes == reference.tbs_certlist_bytes
    assert loaded.signature_algorithm_oid == reference.signature_algorithm_oid
    assert loaded.is_signature_valid(cert.public_key())
    if kind in ("rsa-2048", "ed25519"):  # deterministic signatures: the whole CRL is identical
        assert ours == reference.public_bytes(Encoding.DER)


def test_crl_reads_back_with_every_field():
    cert, key = make_ca("ec-p256")
    entries = [crlmod.encode_entry(*e) for e in ENTRIES]
    loaded = x509.load_der_x509_crl(crlmod.build_crl(Signer("t", cert, key), 7, NOW, NOW + 7 * DAY, entries))
    assert loaded.issuer == cert.subject
    assert loaded.last_update_utc == NOW and loaded.next_update_utc == NOW + 7 * DAY
    assert loaded.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 7
    aki = loaded.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert len(loaded) == len(ENTRIES)
    key_compromised = loaded.get_revoked_certificate_by_serial_number(ENTRIES[1][0])
    assert key_compromised.revocation_date_utc == NOW - 2 * DAY
    assert key_compromised.extensions.get_extension_for_class(x509.CRLReason).value.reason \
        is x509.ReasonFlags.key_compromise
    unspecified = loaded.get_revoked_certificate_by_serial_number(ENTRIES[2][0])
    assert len(unspecified.extensions) == 0


def test_signature_by_another_key_does_not_verify():
    cert, key = make_ca("ec-p256")
    other, _ = make_ca("ec-p256")
    loaded = x509.load_der_x509_crl(crlmod.build_crl(Signer("t", cert, key), 1, NOW, NOW + DAY, []))
    assert loaded.is_signature_valid(cert.public_key())
    assert not loaded.is_signature_valid(other.public_key())


def test_refuses_bad_parameters():
    cert, key = make_ca("ec-p256")
    with pytest.raises(ValueError):
        crlmod.build_crl(Signer("t", cert, key), 1, NOW, NOW, [])
    with pytest.raises(ValueError):
        crlmod.build_crl(Signer("t", cert, key), -1, NOW, NOW + DAY, [])
    with pytest.raises(BadInput):
        crlmod.build_crl(_Sha1Signer("t", cert, key), 1, NOW, NOW + DAY, [])


class _Sha1Signer(Signer):
    """A CA whose hash CRLs are not signed with."""

    @property
    def hash_algorithm(self):
        from cryptography.hazmat.primitives import hashes
        return hashes.SHA1()


def test_large_list_uses_long_form_lengths():
    cert, key = make_ca("ec-p256")
    entries = [crlmod.encode_entry(x509.random_serial_number(), NOW - DAY, x509.ReasonFlags.superseded)
               for _ in range(5000)]
    loaded = x509.load_der_x509_crl(crlmod.build_crl(Signer("t", cert, key), 3, NOW, NOW + DAY, entries))
    assert len(loaded) == 5000 and loaded.is_signature_valid(cert.public_key())


@pytest.mark.parametrize("kind", ["ec-p256", "ec-p384", "rsa-2048", "ed25519"])
def test_pkilint_finds_nothing_at_warning(kind):
    cert, key = make_ca(kind)
    for entries in ([], [crlmod.encode_entry(*e) for e in ENTRIES if e[2] is not x509.ReasonFlags.remove_from_crl]):
        der = crlmod.build_crl(Signer("t", cert, key), 5, NOW, NOW + 7 * DAY, entries)
        assert pkilint_crl_findings(der) == []


def test_pkilint_judge_does_report_a_broken_crl():
    """The judge is not blind: a CRL without AKI/CRL number (built with cryptography) is flagged."""
    cert, key = make_ca("ec-p256")
    bare = (x509.CertificateRevocationListBuilder().issuer_name(cert.subject)
            .last_update(NOW).next_update(NOW + DAY).sign(key, hash_for(key)))
    assert pkilint_crl_findings(bare.public_bytes(Encoding.DER)) != []


def test_revoked_entries_content_round_trips():
    cert, key = make_ca("ec-p256")
    entries = [crlmod.encode_entry(*e) for e in ENTRIES]
    der = crlmod.build_crl(Signer("t", cert, key), 1, NOW, NOW + DAY, entries)
    content = crlmod.revoked_entries_content(der)
    assert content == b"".join(entries)
    extra = crlmod.encode_entry(999, NOW, x509.ReasonFlags.superseded)
    rebuilt = crlmod.build_crl(Signer("t", cert, key), 2, NOW, NOW + DAY, content + extra)
    loaded = x509.load_der_x509_crl(rebuilt)
    assert len(loaded) == len(ENTRIES) + 1 and loaded.is_signature_valid(cert.public_key())
    empty = crlmod.build_crl(Signer("t", cert, key), 3, NOW, NOW + DAY, b"")
    assert crlmod.revoked_entries_content(empty) == b""
    assert len(x509.load_der_x509_crl(empty)) == 0


def test_entries_given_as_empty_parts_leave_the_list_out():
    """[stored content, *new entries] with nothing in either: revokedCertificates is
    absent, not an empty SEQUENCE (RFC 5280 5.1.2.6), as with no entries at all."""
    cert, key = make_ca("ec-p256")
    none = crlmod.build_tbs(cert, signing.algorithm_identifier(key, hash_for(key)), 5, NOW, NOW + DAY, [])
    parts = crlmod.build_tbs(cert, signing.algorithm_identifier(key, hash_for(key)), 5, NOW, NOW + DAY, [b"", b""])
    assert parts == none
    der = crlmod.build_crl(Signer("t", cert, key), 5, NOW, NOW + DAY, [b""])
    assert pkilint_crl_findings(der) == []
    entry = crlmod.encode_entry(7, NOW, None)
    assert crlmod.revoked_entries_content(crlmod.build_crl(Signer("t", cert, key), 6, NOW, NOW + DAY,
                                                           [b"", entry])) == entry


def test_revoked_entries_content_without_next_update():
    """nextUpdate is OPTIONAL in the ASN.1: a CRL from elsewhere without it still reads."""
    cert, key = make_ca("ec-p256")
    entry = crlmod.encode_entry(5, NOW, None)
    algorithm = signing.algorithm_identifier(key, hash_for(key))
    body = (pkider.integer(1) + algorithm + cert.subject.public_bytes() + pkider.x509_time(NOW)
            + pkider.encode(0x30, entry))
    crl_der = pkider.encode(0x30, pkider.encode(0x30, body) + algorithm + pkider.encode(0x03, b"\x00"))
    assert crlmod.revoked_entries_content(crl_der) == entry


@pytest.mark.parametrize("bad", [b"", b"\x30", b"\x30\x05\x02\x01", b"\x30\x81\x05abcde", b"\x04\x00"])
def test_der_read_refuses_broken_input(bad):
    with pytest.raises(ValueError):
        crlmod.revoked_entries_content(bad)


@pytest.mark.parametrize("number", [0, 1, 127, 128, 2**64, 2**158])
def test_crl_number_of_reads_without_decoding_entries(number):
    cert, key = make_ca("ec-p256")
    entries = [crlmod.encode_entry(*e) for e in ENTRIES]
    der = crlmod.build_crl(Signer("t", cert, key), number, NOW, NOW + DAY, entries)
    assert crlmod.crl_number_of(der) == number
    assert crlmod.crl_number_of(crlmod.build_crl(Signer("t", cert, key), number, NOW, NOW + DAY, [])) == number


def test_crl_number_of_a_crl_without_one_is_none():
    cert, key = make_ca("ec-p256")
    bare = (x509.CertificateRevocationListBuilder().issuer_name(cert.subject)
            .last_update(NOW).next_update(NOW + DAY).sign(key, hash_for(key)))
    assert crlmod.crl_number_of(bare.public_bytes(Encoding.DER)) is None


@pytest.mark.parametrize("size", [1, 47, 48, 49, 48 * 2048 - 1, 48 * 2048, 48 * 2048 + 1, 300_001])
def test_pem_lines_are_64_characters_across_blocks(size):
    import base64
    import os

    from mtlskit.publish.crls import pem_crl

    der = os.urandom(size)
    pem = pem_crl(der)
    lines = pem.decode().splitlines()
    assert lines[0] == "-----BEGIN X509 CRL-----" and lines[-1] == "-----END X509 CRL-----"
    body = lines[1:-1]
    assert all(len(line) == 64 for line in body[:-1]) and 0 < len(body[-1]) <= 64
    assert base64.b64decode("".join(body)) == der


def test_random_entries_match_cryptography_byte_for_byte():
    """Serials of every length from 1 to 20 octets, times across the UTCTime/GeneralizedTime
    boundary, every reason: each encoded entry equals what cryptography encodes."""
    import random

    rng = random.Random(5280)
    cert, key = make_ca("ed25519")
    reasons = [None, *crlmod.REASON_CODES]
    entries = []
    for _ in range(300):
        serial = rng.getrandbits(rng.randint(1, 159)) or 1
        when = dt.datetime(1990, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(seconds=rng.randrange(0, 80 * 365 * 86400))
        entries.append((serial, when, rng.choice(reasons)))
    ours = crlmod.build_crl(Signer("t", cert, key), 9, NOW, NOW + 7 * DAY, [crlmod.encode_entry(*e) for e in entries])
    assert ours == _reference_crl(cert, key, 9, entries).public_bytes(Encoding.DER)
