"""Hostile OCSP requests (issue 11, point 7): each is refused as malformedRequest, never
an internalError with a traceback, never echoed into a signed answer."""

from __future__ import annotations

import logging

import pytest
from cryptography.x509 import ocsp as cocsp

from mtlskit.api import ocsp_http
from mtlskit.pki import der
from tests.support_ocsp import make_world, request_der

pytestmark = pytest.mark.security

SHA1 = der.encode(der.OID, bytes.fromhex("2b0e03021a"))
NONCE_OID = der.encode(der.OID, bytes.fromhex("2b0601050507300102"))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("hostile-ocsp"))


def _hashes(world):
    parsed = cocsp.load_der_ocsp_request(request_der(world.leaves["alice"], world.ca.certificate))
    return parsed.issuer_name_hash, parsed.issuer_key_hash, world.leaves["alice"].serial_number


def cert_id(world, serial_der: bytes | None = None, params: bytes = b"\x05\x00") -> bytes:
    name_hash, key_hash, serial = _hashes(world)
    if serial_der is None:
        serial_der = der.integer(serial)
    algorithm = der.encode(der.SEQUENCE, SHA1 + params)
    return der.encode(der.SEQUENCE, algorithm + der.encode(der.OCTET_STRING, name_hash)
                      + der.encode(der.OCTET_STRING, key_hash) + serial_der)


def request(*cert_ids: bytes, extensions: bytes = b"") -> bytes:
    entries = b"".join(der.encode(der.SEQUENCE, c) for c in cert_ids)
    return der.encode(der.SEQUENCE, der.encode(der.SEQUENCE, der.encode(der.SEQUENCE, entries) + extensions))


def nonce_extension(value: bytes) -> bytes:
    return der.encode(der.SEQUENCE, NONCE_OID + der.encode(der.OCTET_STRING, der.encode(der.OCTET_STRING, value)))


def status_of(world, body: bytes) -> cocsp.OCSPResponseStatus:
    return cocsp.load_der_ocsp_response(world.source.respond(body).body).response_status


def test_the_well_formed_twin_is_answered(world):
    assert status_of(world, request(cert_id(world))) is cocsp.OCSPResponseStatus.SUCCESSFUL
    one = der.encode(0xA2, der.encode(der.SEQUENCE, nonce_extension(b"a" * 16)))
    assert status_of(world, request(cert_id(world), extensions=one)) is cocsp.OCSPResponseStatus.SUCCESSFUL


@pytest.mark.parametrize("serial", [b"\x02\x01\xfb", b"\x02\x01\x80", b"\x02\x09\xff" + b"\x00" * 8])
def test_a_negative_serial_is_malformed_and_logs_no_traceback(world, serial, caplog):
    with caplog.at_level(logging.WARNING):
        for extensions in (b"", der.encode(0xA2, der.encode(der.SEQUENCE, nonce_extension(b"n" * 16)))):
            assert status_of(world, request(cert_id(world, serial), extensions=extensions)) \
                is cocsp.OCSPResponseStatus.MALFORMED_REQUEST
    assert not [r for r in caplog.records if r.exc_info]


@pytest.mark.parametrize("params", [b"\x04\x03abc", b"\x05\x00\x05\x00", b"\x30\x00"])
def test_hash_parameters_other_than_null_are_malformed_not_echoed(world, params):
    body = world.source.respond(request(cert_id(world, params=params))).body
    assert cocsp.load_der_ocsp_response(body).response_status is cocsp.OCSPResponseStatus.MALFORMED_REQUEST
    assert params not in body


def test_duplicate_nonce_extensions_are_malformed(world):
    twice = der.encode(0xA2, der.encode(der.SEQUENCE, nonce_extension(b"a" * 16) + nonce_extension(b"b" * 16)))
    assert status_of(world, request(cert_id(world), extensions=twice)) is cocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_a_percent_encoded_get_prefix_is_cut_where_it_ends(world):
    import base64
    import urllib.parse

    der_request = request_der(world.leaves["alice"], world.ca.certificate)
    encoded = urllib.parse.quote(base64.b64encode(der_request).decode(), safe="")
    for prefix in (b"/ocsp/", b"/%6Fcsp/", b"/%6f%63%73%70/", b"/ocsp%2F"):
        assert ocsp_http.request_from_get_path(prefix + encoded.encode()) == der_request
    assert ocsp_http.request_from_get_path(b"/ocspx/" + encoded.encode()) is None
