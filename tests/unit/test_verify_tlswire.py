"""Parsing the handshake messages Python's ssl hides: CertificateRequest and Certificate."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mtlskit.verify import tlswire
from tests.support_verify import make_ca


def vec(data: bytes, n: int) -> bytes:
    return len(data).to_bytes(n, "big") + data


NAMES = [
    x509.Name([x509.NameAttribute(x509.NameOID.COUNTRY_NAME, "DE"),
               x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, "Example GmbH"),
               x509.NameAttribute(x509.NameOID.COMMON_NAME, "Partner Root CA")]),
    x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "Ünïcode CA")]),
]
DN_LIST = vec(b"".join(vec(n.public_bytes(), 2) for n in NAMES), 2)


def test_tls12_certificate_request_names():
    body = vec(b"\x01\x40", 1) + vec(b"\x04\x03\x08\x04", 2) + DN_LIST  # RFC 5246 7.4.4
    message = bytes([13]) + len(body).to_bytes(3, "big") + body
    names = tlswire.certificate_request_names(tlswire.strip_header(message, 13), tls13=False)
    assert names == NAMES
    assert names[0].rfc4514_string() == "CN=Partner Root CA,O=Example GmbH,C=DE"


def test_tls13_certificate_request_names_come_from_the_extension():
    extensions = vec(b"\x00\x0d" + vec(vec(b"\x04\x03", 2), 2) + b"\x00\x2f" + vec(DN_LIST, 2), 2)
    body = vec(b"", 1) + extensions  # RFC 8446 4.3.2
    assert tlswire.certificate_request_names(body, tls13=True) == NAMES


def test_tls13_certificate_request_without_names():
    body = vec(b"", 1) + vec(b"\x00\x0d" + vec(vec(b"\x04\x03", 2), 2), 2)
    assert tlswire.certificate_request_names(body, tls13=True) == []


@pytest.mark.parametrize("tls13", [True, False])
def test_certificate_message_lists_the_chain(tls13):
    root = make_ca("Wire Root")
    inter = make_ca("Wire Intermediate", root)
    ders = [c.cert.public_bytes(serialization.Encoding.DER) for c in (inter, root)]
    entries = b"".join(vec(d, 3) + (vec(b"", 2) if tls13 else b"") for d in ders)
    body = (vec(b"", 1) if tls13 else b"") + vec(entries, 3)
    assert tlswire.certificate_list(body, tls13) == [inter.cert, root.cert]


@pytest.mark.parametrize("body", [b"", b"\x00\x00\x05\x00", vec(b"\x01", 1) + vec(b"", 2) + b"\x00\x09\x00\x07\x30\x05"])
def test_truncated_or_malformed_messages_raise_wire_error(body):
    with pytest.raises(tlswire.WireError):
        tlswire.certificate_request_names(body, tls13=False)


def test_strip_header_checks_the_type():
    with pytest.raises(tlswire.WireError):
        tlswire.strip_header(b"\x0b\x00\x00\x00", 13)
