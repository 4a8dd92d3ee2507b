"""The pure OCSP code: request parsing, response building, the responder certificate."""

from __future__ import annotations

import datetime as dt
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp as cocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, OCSPExtensionOID

from mtlskit.clock import FixedClock
from mtlskit.errors import BadInput
from mtlskit.pki import der
from mtlskit.publish import ocsp
from mtlskit.publish.responder import ResponderFiles, ensure_responder, renewal_due
from tests.support_ocsp import NOW, make_ca, make_leaf, make_responder, pkilint_cert_findings, \
    pkilint_findings, request_der

HOUR = dt.timedelta(hours=1)


@pytest.fixture(scope="module")
def pki():
    root = make_ca("root", "Unit Root")
    issuing = make_ca("intermediate", "Unit Issuing", root)
    alice, _ = make_leaf(issuing, "alice")
    bob, _ = make_leaf(issuing, "bob")
    return {"root": root, "ca": issuing, "alice": alice, "bob": bob, "responder": make_responder(issuing)}


def multi_request(*cert_ids: ocsp.CertId, nonce: bytes | None = None) -> bytes:
    requests = der.sequence(*(der.sequence(c.der) for c in cert_ids))
    parts = [requests]
    if nonce is not None:
        ext = der.sequence(der.oid("1.3.6.1.5.5.7.48.1.2"), der.encode(der.OCTET_STRING, nonce))
        parts.append(der.encode(der.context(2), der.sequence(ext)))
    return der.sequence(der.sequence(*parts))


# --- requests -----------------------------------------------------------------------------

def test_parse_single_request_reads_cert_id_and_nonce(pki):
    parsed = ocsp.parse_request(request_der(pki["alice"], pki["ca"].certificate, nonce=b"n" * 16))
    (cid,) = parsed.cert_ids
    assert cid.serial == pki["alice"].serial_number
    assert cid.hash_name == "sha1"
    assert (cid.issuer_name_hash, cid.issuer_key_hash) == ocsp.issuer_hashes(pki["ca"].certificate, "sha1")
    assert parsed.nonce == der.encode(der.OCTET_STRING, b"n" * 16)


def test_parse_request_without_nonce_and_with_sha256(pki):
    parsed = ocsp.parse_request(request_der(pki["alice"], pki["ca"].certificate, algorithm=hashes.SHA256()))
    assert parsed.nonce is None
    assert parsed.cert_ids[0].hash_name == "sha256"
    assert parsed.cert_ids[0].issuer_key_hash == ocsp.issuer_hashes(pki["ca"].certificate, "sha256")[1]


def test_parse_request_for_several_certificates(pki):
    a = ocsp.parse_request(request_der(pki["alice"], pki["ca"].certificate)).cert_ids[0]
    b = ocsp.parse_request(request_der(pki["bob"], pki["ca"].certificate)).cert_ids[0]
    parsed = ocsp.parse_request(multi_request(a, b, nonce=der.encode(der.OCTET_STRING, b"x" * 32)))
    assert [c.serial for c in parsed.cert_ids] == [pki["alice"].serial_number, pki["bob"].serial_number]
    assert parsed.nonce is not None


@pytest.mark.parametrize("garbage, words", [
    (b"", "empty"),
    (b"hello, responder", "DER"),
    (b"\x30\x80\x00\x00", "indefinite"),
    (b"\x30\x05\x30\x03\x30\x01", "runs past"),
    (der.sequence(der.sequence(der.sequence())), "empty"),
    (der.sequence(der.sequence(der.integer(5))), "request list"),
])
def test_parse_request_refuses_garbage(garbage, words):
    with pytest.raises(BadInput, match=words):
        ocsp.parse_request(garbage)


def test_parse_request_refuses_trailing_bytes(pki):
    with pytest.raises(BadInput, match="trailing"):
        ocsp.parse_request(request_der(pki["alice"], pki["ca"].certificate) + b"\x00")


def test_parse_request_refuses_nonce_longer_than_32_octets(pki):
    cid = ocsp.parse_request(request_der(pki["alice"], pki["ca"].certificate)).cert_ids[0]
    ok = multi_request(cid, nonce=der.encode(der.OCTET_STRING, b"y" * 32))
    too_long = multi_request(cid, nonce=der.encode(der.OCTET_STRING, b"y" * 33))
    assert ocsp.parse_request(ok).nonce
    with pytest.raises(BadInput, match="1 to 32 octets"):
        ocsp.parse_request(too_long)


# --- responses ----------------------------------------------------------------------------

def answer(pki, status, name="alice", reason=x509.ReasonFlags.key_compromise):
    cid = ocsp.parse_request(request_der(pki[name], pki["ca"].certificate)).cert_ids[0]
    return ocsp.SingleAnswer(cid, status, NOW - HOUR if status is ocsp.CertStatus.REVOKED else None,
                             reason if status is ocsp.CertStatus.REVOKED else None)


def verify_signature(response: cocsp.OCSPResponse, responder: ocsp.ResponderKey) -> None:
    responder.certificate.public_key().verify(response.signature, response.tbs_response_bytes,
                                              ec.ECDSA(response.signature_hash_algorithm))


@pytest.mark.parametrize("status", list(ocsp.CertStatus))
def test_single_response_says_status_and_verifies(pki, status):
    data = ocsp.build_response([answer(pki, status)], pki["responder"], NOW, NOW + HOUR)
    response = cocsp.load_der_ocsp_response(data)
    assert response.response_status is cocsp.OCSPResponseStatus.SUCCESSFUL
    assert response.certificate_status.name == status.name
    assert response.serial_number == pki["alice"].serial_number
    assert response.this_update_utc == NOW and response.next_update_utc == NOW + HOUR
    assert response.responder_key_hash == x509.SubjectKeyIdentifier.from_public_key(
        pki["responder"].certificate.public_key()).digest
    assert response.certificates == [pki["responder"].certificate]
    verify_signature(response, pki["responder"])
    if status is ocsp.CertStatus.REVOKED:
        assert response.revocation_reason is x509.ReasonFlags.key_compromise
        assert response.revocation_time_utc == NOW - HOUR


def test_nonce_is_echoed_byte_for_byte(pki):
    nonce = der.encode(der.OCTET_STRING, bytes(range(16)))
    data = ocsp.build_response([answer(pki, ocsp.CertStatus.GOOD)], pki["responder"], NOW, NOW + HOUR, nonce)
    response = cocsp.load_der_ocsp_response(data)
    assert response.extensions.get_extension_for_oid(OCSPExtensionOID.NONCE).value.nonce == bytes(range(16))
    without = cocsp.load_der_ocsp_response(
        ocsp.build_response([answer(pki, ocsp.CertStatus.GOOD)], pki["responder"], NOW, NOW + HOUR))
    assert len(without.extensions) == 0


def test_assembled_response_data_matches_cryptography_for_one_certificate(pki):
    # The DER assembly used for several certificates must encode exactly what
    # cryptography's builder encodes for one (same CertID, times, responder id, nonce);
    # the builder stamps producedAt with the system time, so that one is taken from it.
    single = answer(pki, ocsp.CertStatus.REVOKED)
    nonce = der.encode(der.OCTET_STRING, b"z" * 16)
    built = cocsp.load_der_ocsp_response(ocsp._build_with_cryptography(
        single, pki["responder"], NOW, NOW + HOUR, nonce))
    assembled = ocsp.tbs_response_data([single], pki["responder"], NOW, NOW + HOUR, nonce,
                                         built.produced_at_utc)
    assert assembled == built.tbs_response_bytes


def test_several_certificates_get_one_single_response_each(pki):
    answers = [answer(pki, ocsp.CertStatus.GOOD, "alice"), answer(pki, ocsp.CertStatus.REVOKED, "bob")]
    data = ocsp.build_response(answers, pki["responder"], NOW, NOW + HOUR)
    response = cocsp.load_der_ocsp_response(data)
    singles = list(response.responses)
    assert [s.serial_number for s in singles] == [pki["alice"].serial_number, pki["bob"].serial_number]
    assert [s.certificate_status for s in singles] == [cocsp.OCSPCertStatus.GOOD, cocsp.OCSPCertStatus.REVOKED]
    assert singles[1].revocation_reason is x509.ReasonFlags.key_compromise
    verify_signature(response, pki["responder"])


@pytest.mark.parametrize("status", list(ocsp.CertStatus))
@pytest.mark.parametrize("count", [1, 2])
@pytest.mark.parametrize("nonce", [None, der.encode(der.OCTET_STRING, b"q" * 16)])
def test_responses_lint_clean_with_pkilint(pki, status, count, nonce):
    # one certificate without nonce: cryptography's builder; the rest: the DER assembly
    data = ocsp.build_response([answer(pki, status)] * count, pki["responder"], NOW, NOW + HOUR, nonce)
    assert pkilint_findings(data) == []


def test_unsuccessful_responses_carry_only_a_status():
    assert cocsp.load_der_ocsp_response(ocsp.MALFORMED_REQUEST).response_status \
        is cocsp.OCSPResponseStatus.MALFORMED_REQUEST
    assert cocsp.load_der_ocsp_response(ocsp.UNAUTHORIZED).response_status \
        is cocsp.OCSPResponseStatus.UNAUTHORIZED


# --- the responder certificate -------------------------------------------------------------

def test_responder_certificate_is_a_delegated_ocsp_signer(pki):
    cert = pki["responder"].certificate
    assert cert.issuer == pki["ca"].certificate.subject
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == \
        [ExtendedKeyUsageOID.OCSP_SIGNING]
    assert cert.extensions.get_extension_for_class(x509.OCSPNoCheck)
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert cert.not_valid_after_utc - NOW == dt.timedelta(days=7)
    pki["ca"].certificate.public_key().verify(cert.signature, cert.tbs_certificate_bytes,
                                              ec.ECDSA(hashes.SHA256()))
    assert pkilint_cert_findings(cert) == []


def test_renewal_is_due_after_two_thirds_of_the_life(pki):
    cert = pki["responder"].certificate
    life = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert not renewal_due(cert, cert.not_valid_before_utc + life * 0.66)
    assert renewal_due(cert, cert.not_valid_before_utc + life * 0.67)
    assert renewal_due(cert, cert.not_valid_before_utc - dt.timedelta(seconds=1))


def test_ensure_responder_keeps_a_fresh_one_and_renews_a_due_one(tmp_path, pki):
    clock = FixedClock(NOW)
    files = ResponderFiles(tmp_path / "ocsp", "intermediate")
    first, created = ensure_responder(files, pki["ca"], clock)
    assert created
    assert stat.S_IMODE(files.key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(files.directory.stat().st_mode) == 0o700
    clock.advance(dt.timedelta(days=4))
    again, created = ensure_responder(files, pki["ca"], clock)
    assert not created and again.certificate == first.certificate
    clock.advance(dt.timedelta(days=1))
    renewed, created = ensure_responder(files, pki["ca"], clock)
    assert created and renewed.certificate.serial_number != first.certificate.serial_number
    assert files.load(pki["ca"].certificate).certificate == renewed.certificate


def test_responder_of_another_ca_is_not_reused(tmp_path, pki):
    files = ResponderFiles(tmp_path / "ocsp", "intermediate")
    ensure_responder(files, pki["root"], FixedClock(NOW))
    assert files.load(pki["ca"].certificate) is None


def test_unreadable_responder_files_are_reported(tmp_path, pki):
    files = ResponderFiles(tmp_path, "intermediate")
    files.certificate_path.write_text("not a certificate")
    files.key_path.write_text("not a key")
    with pytest.raises(BadInput, match="cannot read the OCSP responder"):
        files.load(pki["ca"].certificate)


@pytest.mark.parametrize("nonce", [None, b"k" * 16, b"1"])
@pytest.mark.parametrize("algorithm", [hashes.SHA1(), hashes.SHA256(), hashes.SHA384()])
def test_both_request_readers_agree(pki, nonce, algorithm):
    # One-certificate requests are read by cryptography's parser, the rest by the DER walker.
    data = request_der(pki["alice"], pki["ca"].certificate, nonce=nonce, algorithm=algorithm)
    quick = ocsp._parse_single_with_cryptography(data)
    assert quick is not None
    assert quick == ocsp._parse_der(data)


def test_unknown_cert_id_hash_is_read_but_matches_no_issuer(pki):
    cid = ocsp.parse_request(request_der(pki["alice"], pki["ca"].certificate)).cert_ids[0]
    odd = der.sequence(der.sequence(der.oid("1.2.3.4"), der.encode(der.NULL, b"")),
                       der.encode(der.OCTET_STRING, cid.issuer_name_hash),
                       der.encode(der.OCTET_STRING, cid.issuer_key_hash), der.integer(cid.serial))
    parsed = ocsp.parse_request(multi_request(ocsp.CertId("x", b"", b"", 0, odd)))
    assert parsed.cert_ids[0].hash_name == der.oid("1.2.3.4").hex()


@pytest.mark.parametrize("stored, flag", [
    ("key-compromise", x509.ReasonFlags.key_compromise), ("keyCompromise", x509.ReasonFlags.key_compromise),
    ("cessation-of-operation", x509.ReasonFlags.cessation_of_operation),
    ("certificate-hold", x509.ReasonFlags.certificate_hold),
    ("unspecified", None), (None, None), ("made-up", None),
])
def test_stored_reasons_map_to_rfc5280_codes(stored, flag):
    from mtlskit.publish.ocsp_status import reason_flag

    assert reason_flag(stored) is flag
