"""The nonce fast path: responses closed from a prepared ResponseData, and requests that
differ only in their nonce octets read once."""

from __future__ import annotations

import datetime as dt
import os

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509 import ocsp as cocsp
from cryptography.x509.oid import OCSPExtensionOID

from mtlskit.clock import FixedClock
from mtlskit.errors import BadInput, InternalError
from mtlskit.pki import der
from mtlskit.publish import ocsp
from mtlskit.publish.ocsp_source import CertificateState, OcspSource, ServedCa
from mtlskit.pki.reference import reference_encoders
from mtlskit.publish.responder import build_responder_certificate
from tests.support_ocsp import NOW, make_ca, make_leaf, make_responder, pkilint_findings, request_der

HOUR = dt.timedelta(hours=1)
NONCE_OID = "1.3.6.1.5.5.7.48.1.2"


@pytest.fixture(scope="module")
def pki():
    root = make_ca("root", "Fast Root")
    issuing = make_ca("intermediate", "Fast Issuing", root)
    leaves = [make_leaf(issuing, name)[0] for name in ("alice", "bob", "carol")]
    return {"ca": issuing, "leaves": leaves, "responder": make_responder(issuing)}


def reference_response(body: bytes, responder: ocsp.ResponderKey, nonce: bytes | None) -> bytes:
    """The same OCSPResponse written element by element with the generic DER encoder."""
    if nonce is not None:
        extension = der.sequence(der.oid(NONCE_OID), der.encode(der.OCTET_STRING, nonce))
        body += der.encode(der.context(1), der.sequence(extension))
    tbs = der.encode(der.SEQUENCE, body)
    signature = responder.sign(tbs)
    basic = der.sequence(tbs, responder.signature_algorithm_der, der.encode(der.BIT_STRING, b"\x00" + signature),
                         responder.certs_der)
    return der.sequence(der.encode(der.ENUMERATED, b"\x00"),
                        der.encode(der.context(0), der.sequence(der.oid("1.3.6.1.5.5.7.48.1.1"),
                                                                der.encode(der.OCTET_STRING, basic))))


def answers(pki, count: int) -> list[ocsp.SingleAnswer]:
    found = []
    for leaf in pki["leaves"][:count]:
        cid = ocsp.parse_request(request_der(leaf, pki["ca"].certificate)).cert_ids[0]
        found.append(ocsp.SingleAnswer(cid, ocsp.CertStatus.GOOD))
    return found


def deterministic(responder: ocsp.ResponderKey) -> ocsp.ResponderKey:
    """The responder with RFC 6979 signatures, so two encoders can be compared byte for byte."""
    key = responder.private_key
    fixed = ocsp.ResponderKey(responder.certificate, key)
    ecdsa = ec.ECDSA(responder.certificate.signature_hash_algorithm, deterministic_signing=True)
    fixed.__dict__["sign"] = lambda data: key.sign(data, ecdsa)
    return fixed


@pytest.mark.parametrize("count", [1, 3])
@pytest.mark.parametrize("nonce_octets", [None, 1, 16, 32])
def test_prepared_response_encodes_like_the_generic_encoder(pki, count, nonce_octets):
    responder = deterministic(pki["responder"])
    body = ocsp.response_data_body(answers(pki, count), responder, NOW, NOW + HOUR)
    nonce = None if nonce_octets is None else der.encode(der.OCTET_STRING, os.urandom(nonce_octets))
    prepared = ocsp.PreparedResponse(body, responder)
    assert prepared.sign(nonce) == reference_response(body, responder, nonce)
    assert prepared.sign(nonce) == reference_response(body, responder, nonce)  # from its memo, too


@pytest.mark.parametrize("nonce_octets", [1, 16, 32])
def test_prepared_response_matches_the_builder_and_verifies(pki, nonce_octets):
    single = answers(pki, 1)[0]
    nonce = der.encode(der.OCTET_STRING, os.urandom(nonce_octets))
    built = cocsp.load_der_ocsp_response(ocsp._build_with_cryptography(
        single, pki["responder"], NOW, NOW + HOUR, nonce))
    body = ocsp.response_data_body([single], pki["responder"], NOW, NOW + HOUR, built.produced_at_utc)
    data = ocsp.PreparedResponse(body, pki["responder"]).sign(nonce)
    ours = cocsp.load_der_ocsp_response(data)
    assert ours.tbs_response_bytes == built.tbs_response_bytes
    pki["responder"].certificate.public_key().verify(ours.signature, ours.tbs_response_bytes,
                                                     ec.ECDSA(ours.signature_hash_algorithm))
    assert ours.extensions.get_extension_for_oid(OCSPExtensionOID.NONCE).value.nonce == nonce[2:]
    assert pkilint_findings(data) == []


@pytest.mark.parametrize("make_key", [lambda: rsa.generate_private_key(65537, 2048), ed25519.Ed25519PrivateKey.generate],
                         ids=["rsa", "ed25519"])
def test_prepared_response_with_other_responder_keys_verifies(pki, make_key):
    key = make_key()
    ca = pki["ca"]
    responder = ocsp.ResponderKey(build_responder_certificate(ca, key.public_key(), NOW), key)
    body = ocsp.response_data_body(answers(pki, 2), responder, NOW, NOW + HOUR)
    nonce = der.encode(der.OCTET_STRING, b"n" * 20)
    data = ocsp.PreparedResponse(body, responder).sign(nonce)
    parsed = cocsp.load_der_ocsp_response(data)
    assert parsed.response_status is cocsp.OCSPResponseStatus.SUCCESSFUL
    if isinstance(key, rsa.RSAPrivateKey):
        from cryptography.hazmat.primitives.asymmetric import padding
        key.public_key().verify(parsed.signature, parsed.tbs_response_bytes, padding.PKCS1v15(),
                                parsed.signature_hash_algorithm)
    else:
        key.public_key().verify(parsed.signature, parsed.tbs_response_bytes)
    assert pkilint_findings(data) == []


# --- requests that differ only in their nonce ------------------------------------------------

def extensions_request(cert_id: ocsp.CertId, *extensions: bytes, signature: bytes = b"") -> bytes:
    tbs = der.sequence(der.sequence(der.sequence(cert_id.der)), der.encode(der.context(2), der.sequence(*extensions)))
    return der.sequence(tbs, signature) if signature else der.sequence(tbs)


def nonce_extension(value: bytes, critical: bool = False) -> bytes:
    return der.extension(NONCE_OID, der.encode(der.OCTET_STRING, value), critical)


def test_split_nonce_finds_the_nonce_that_ends_a_request(pki):
    data = request_der(pki["leaves"][0], pki["ca"].certificate, nonce=b"x" * 16)
    parsed = ocsp.parse_request(data)
    prefix, value = ocsp.split_nonce(data)
    assert value == parsed.nonce and prefix + b"x" * 16 == data
    assert ocsp.nonce_ends_request(data, parsed)
    assert ocsp.split_nonce(request_der(pki["leaves"][0], pki["ca"].certificate)) is None


def test_a_nonce_that_does_not_end_the_request_is_not_split(pki):
    cid = answers(pki, 1)[0].cert_id
    other = der.extension("1.3.6.1.5.5.7.48.1.4", der.sequence(der.oid("1.3.6.1.5.5.7.48.1.1")))
    followed = extensions_request(cid, nonce_extension(b"a" * 8), other)
    assert ocsp.split_nonce(followed) is None
    critical = extensions_request(cid, nonce_extension(b"a" * 8, critical=True))
    assert ocsp.split_nonce(critical) is None
    too_long = extensions_request(cid, nonce_extension(b"a" * 33))
    assert ocsp.split_nonce(too_long) is None


def test_requests_that_only_look_alike_are_not_trusted(pki):
    cid = answers(pki, 1)[0].cert_id
    twice = extensions_request(cid, nonce_extension(b"first123"), nonce_extension(b"second12"))
    assert ocsp.split_nonce(twice) is not None
    with pytest.raises(BadInput, match="twice"):  # two nonces: malformed, never answered
        ocsp.parse_request(twice)
    signed = extensions_request(cid, nonce_extension(b"a" * 8), signature=der.encode(der.context(0), b""))
    assert ocsp.split_nonce(signed) is None


class Lookup:
    def __init__(self) -> None:
        self.states: dict[int, CertificateState] = {}
        self.marker = 0

    def state(self, issuer, serial):
        return self.states.get(serial, CertificateState(ocsp.CertStatus.GOOD))

    def change_marker(self):
        return self.marker

    def changed_since(self, marker):
        return self.marker, set()


@pytest.fixture()
def source(pki):
    lookup = Lookup()
    clock = FixedClock(NOW)
    source = OcspSource([ServedCa("intermediate", pki["ca"].certificate, pki["responder"])], lookup, clock,
                        refresh_seconds=3600)
    return source, lookup, clock


def nonce_of(data: bytes) -> bytes:
    return cocsp.load_der_ocsp_response(data).extensions.get_extension_for_oid(OCSPExtensionOID.NONCE).value.nonce


def test_second_request_with_another_nonce_is_answered_without_parsing(pki, source, monkeypatch):
    source, _lookup, _clock = source
    leaf = pki["leaves"][0]
    first = source.respond(request_der(leaf, pki["ca"].certificate, nonce=b"1" * 16)).body
    monkeypatch.setattr(ocsp, "parse_request", lambda data: pytest.fail("parsed again"))
    second = source.respond(request_der(leaf, pki["ca"].certificate, nonce=b"2" * 16)).body
    assert nonce_of(first) == b"1" * 16 and nonce_of(second) == b"2" * 16
    parsed = cocsp.load_der_ocsp_response(second)
    assert parsed.certificate_status is cocsp.OCSPCertStatus.GOOD and parsed.serial_number == leaf.serial_number
    pki["responder"].certificate.public_key().verify(parsed.signature, parsed.tbs_response_bytes,
                                                     ec.ECDSA(parsed.signature_hash_algorithm))


def test_fast_path_answers_a_revocation_on_the_next_request(pki, source):
    source, lookup, _clock = source
    leaf = pki["leaves"][1]
    assert cocsp.load_der_ocsp_response(source.respond(
        request_der(leaf, pki["ca"].certificate, nonce=b"a" * 16)).body).certificate_status is cocsp.OCSPCertStatus.GOOD
    lookup.states[leaf.serial_number] = CertificateState(ocsp.CertStatus.REVOKED, NOW - HOUR,
                                                         x509.ReasonFlags.key_compromise)
    source.invalidate([("intermediate", leaf.serial_number)])
    revoked = cocsp.load_der_ocsp_response(source.respond(request_der(leaf, pki["ca"].certificate, nonce=b"b" * 16)).body)
    assert revoked.certificate_status is cocsp.OCSPCertStatus.REVOKED
    assert revoked.revocation_reason is x509.ReasonFlags.key_compromise


def test_fast_path_moves_with_the_clock_and_keeps_malformed_requests_malformed(pki, source):
    source, _lookup, clock = source
    leaf = pki["leaves"][2]
    request = request_der(leaf, pki["ca"].certificate, nonce=b"c" * 16)
    source.respond(request)
    clock.advance(dt.timedelta(seconds=3))
    later = cocsp.load_der_ocsp_response(source.respond(request[:-16] + b"d" * 16).body)
    assert later.this_update_utc == NOW + dt.timedelta(seconds=3)
    if not reference_encoders():  # cryptography's builder stamps producedAt with the system clock
        assert later.produced_at_utc == NOW + dt.timedelta(seconds=3)
    assert source.respond(request[:-1]).body == ocsp.MALFORMED_REQUEST  # one octet short: not the known shape
    assert source.respond(request + b"\x00").body == ocsp.MALFORMED_REQUEST


def test_respond_nonce_answers_only_a_request_shape_already_answered(pki, source):
    source, _lookup, _clock = source
    leaf = pki["leaves"][0]
    request = request_der(leaf, pki["ca"].certificate, nonce=b"e" * 16)
    prefix, nonce = ocsp.split_nonce(request)
    assert not source.knows_nonce_shape(prefix) and source.respond_nonce(prefix, nonce) is None
    source.respond(request)
    assert source.knows_nonce_shape(prefix)
    signed = source.respond_nonce(prefix, ocsp.split_nonce(request[:-16] + b"f" * 16)[1])
    assert nonce_of(signed.body) == b"f" * 16 and not signed.cacheable
    assert source.respond_nonce(prefix[:-1], nonce) is None  # another shape


def test_respond_nonce_answers_try_later_when_the_inventory_cannot_be_read(pki, source):
    source, lookup, _clock = source
    leaf = pki["leaves"][2]
    request = request_der(leaf, pki["ca"].certificate, nonce=b"g" * 16)
    source.respond(request)

    def unreadable():
        raise InternalError("the inventory cannot be read")

    lookup.change_marker = unreadable
    assert source.respond_nonce(*ocsp.split_nonce(request)).body != ocsp.TRY_LATER  # not due: cached state
    source._next_poll = 0  # the refresh interval has passed
    assert source.respond_nonce(*ocsp.split_nonce(request)).body == ocsp.TRY_LATER
