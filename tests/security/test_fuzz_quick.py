"""The fuzz targets of fuzz/ run briefly (a few hundred examples each, derandomized), so CI
keeps them alive; `make fuzz` runs them for minutes. Below them, the defects the fuzzers
found, each as a plain regression test."""

from __future__ import annotations

import asyncio
import warnings

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import given

from fuzz import csr_pem, deploy_render, engine, http_head, ocsp_request
from mtlskit.errors import BadInput
from mtlskit.pki import der
from mtlskit.pki.encoding import detect, load_certificates, load_csr
from mtlskit.publish import ocsp

pytestmark = pytest.mark.security


@pytest.mark.parametrize("target,examples", [(ocsp_request, 300), (http_head, 200), (csr_pem, 300),
                                             (deploy_render, 300)], ids=lambda v: getattr(v, "__name__", v))
def test_fuzz_target_holds_briefly(target, examples):
    engine.quick_settings(examples)(given(target.CASES)(target.check))()


# --- OCSP: the DER walker read requests cryptography refuses -----------------------------------

def _first_id() -> bytes:
    return ocsp.parse_request(ocsp_request.seeds()[0]).cert_ids[0].der


NOT_DER = {
    "requestorName that is no GeneralName": ocsp_request._request(
        [der.sequence(_first_id())], before=der.encode(der.context(1), der.sequence())),
    "criticality that is no BOOLEAN": ocsp_request._request(
        [der.sequence(_first_id())],
        [der.sequence(ocsp_request.NONCE_OID, der.encode(0x00, b"\xff"),
                      der.encode(der.OCTET_STRING, der.encode(der.OCTET_STRING, b"c" * 8)))]),
    "explicit default version (BER)": ocsp_request._request(
        [der.sequence(_first_id())], before=der.encode(der.context(0), der.integer(0))),
    "AcceptableResponses whose value is no SEQUENCE OF OID": ocsp_request._request(
        [der.sequence(_first_id())],
        [der.sequence(der.oid("1.3.6.1.5.5.7.48.1.4"), der.encode(der.OCTET_STRING, b"\x31\x00"))]),
    "singleRequestExtensions that are no Extensions": ocsp_request._request(
        [der.sequence(_first_id(), der.integer(1)), der.sequence(_first_id())]),
}


@pytest.mark.parametrize("request_der", NOT_DER.values(), ids=NOT_DER.keys())
def test_requests_cryptography_refuses_are_malformed(request_der):
    read = ocsp_request.cryptography_reads(request_der)
    assert read is None or not read.extensions_ok or len(ocsp_request.single_requests(request_der)) > 1
    with pytest.raises(BadInput):
        ocsp.parse_request(request_der)
    assert ocsp_request.source().respond(request_der).body == ocsp.MALFORMED_REQUEST


# --- HTTP: the 405 of /ocsp had no content-length ----------------------------------------------

def test_method_not_allowed_on_ocsp_is_framed_on_a_kept_connection():
    chunks = [b"PUT /ocsp HTTP/1.1\r\nHost: x\r\n\r\nGET /nothing HTTP/1.1\r\nHost: x\r\n\r\n"]

    async def converse():
        shared = http_head.server._Shared(app=http_head._app, source=ocsp_request.source(),
                                          clock=http_head.FixedClock(http_head.pki.NOW), server_address=("h", 1))
        protocol = http_head.server.HttpProtocol(shared)
        transport = http_head.Transport(False)
        protocol.connection_made(transport)
        protocol.data_received(chunks[0])
        for _ in range(8):
            await asyncio.sleep(0)
        return transport.written

    written = asyncio.run(converse())
    assert written.startswith(b"HTTP/1.1 405 ")
    assert http_head.responses(written) == 2  # asserts each carries its content-length


# --- CSR and PEM: cryptography's other exceptions were tracebacks -------------------------------

def _csr_der() -> bytes:
    return csr_pem.seeds()[0]


EC_PUBLIC_KEY = der.oid("1.2.840.10045.2.1")


def test_csr_with_an_unknown_key_kind_is_bad_input():
    damaged = _csr_der().replace(EC_PUBLIC_KEY, EC_PUBLIC_KEY[:-1] + b"\x09", 1)
    with pytest.raises(BadInput):
        load_csr(damaged)


def test_csr_whose_key_is_not_on_its_curve_is_bad_input():
    data = _csr_der()
    point = data.index(b"\x03\x42\x00\x04") + 10
    with pytest.raises(BadInput):
        load_csr(data[:point] + bytes((data[point] ^ 0x01,)) + data[point + 1:])


def test_csr_with_an_invalid_version_is_bad_input():
    with pytest.raises(BadInput):
        load_csr(_csr_der().replace(b"\x02\x01\x00", b"\x02\x01\x04", 1))


def test_detect_of_a_public_key_of_unknown_kind_is_bad_input():
    spki = csr_pem.seeds()[7]
    with pytest.raises(BadInput):
        detect(spki.replace(EC_PUBLIC_KEY, EC_PUBLIC_KEY[:-1] + b"\x09", 1))


def test_detect_shows_no_warning_for_a_bundle_that_is_not_der():
    bundle = next(s for s in csr_pem.seeds() if s[:1] == b"\x30" and b"\x02\x01\x03" in s[:8])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            detect(bundle + b"\x00\x00", csr_pem.PASSWORD)
        except BadInput:
            pass  # refused is fine; a warning (shown to the user) is not


def test_detect_shows_no_warning_for_a_certificate_whose_serial_is_zero():
    leaf = http_head.pki.leaves()[0].public_bytes(serialization.Encoding.DER)  # serial 1
    version_and_serial = b"\xa0\x03\x02\x01\x02\x02\x01\x01"
    assert version_and_serial in leaf
    zero = leaf.replace(version_and_serial, version_and_serial[:-1] + b"\x00", 1)
    with warnings.catch_warnings():  # loading; reading .serial_number warns again (the caller's business)
        warnings.simplefilter("error")
        loaded = detect(zero).objects + load_certificates(der.pem("CERTIFICATE", zero))
    assert [c.public_bytes(serialization.Encoding.DER) for c in loaded] == [zero, zero]


def test_inspect_summary_of_a_certificate_whose_serial_is_zero_shows_no_warning():
    import datetime as dt

    from mtlskit.pki.summary import certificate_summary

    leaf = http_head.pki.leaves()[0].public_bytes(serialization.Encoding.DER)  # serial 1
    version_and_serial = b"\xa0\x03\x02\x01\x02\x02\x01\x01"
    zero = leaf.replace(version_and_serial, version_and_serial[:-1] + b"\x00", 1)
    [cert] = detect(zero).objects
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        summary = certificate_summary(cert, dt.datetime.now(dt.timezone.utc))
    assert summary["serial"] == "0"
