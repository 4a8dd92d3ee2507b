"""Just enough of the TLS handshake wire format to read what Python's ``ssl`` hides.

``ssl`` does not expose the CertificateRequest (the CA names a server accepts for
client certificates) nor, before Python 3.13, the server's full certificate chain.
OpenSSL hands every plaintext handshake message (decrypted, in TLS 1.3 too) to the
message callback, which CPython exposes as ``SSLContext._msg_callback``; these pure
functions parse the bodies it receives. Formats:

* CertificateRequest, TLS 1.2 (RFC 5246 7.4.4): certificate_types<1..2^8-1>,
  supported_signature_algorithms<2..2^16-2>, certificate_authorities<0..2^16-1>.
* CertificateRequest, TLS 1.3 (RFC 8446 4.3.2): certificate_request_context<0..2^8-1>,
  extensions<2..2^16-1>; the CA names are the certificate_authorities extension
  (type 47, RFC 8446 4.2.4), a list of DistinguishedName<1..2^16-1>.
* Certificate, TLS 1.2 (RFC 5246 7.4.2): certificate_list<0..2^24-1> of
  ASN.1Cert<1..2^24-1>; TLS 1.3 (RFC 8446 4.4.2): certificate_request_context, then
  CertificateEntry {cert_data<1..2^24-1>, extensions<0..2^16-1>}.
* Alert (RFC 8446 6): level, description.

A DistinguishedName is the DER of an X.501 Name, decoded here into an x509.Name.
"""

from __future__ import annotations

from cryptography import x509

from mtlskit.errors import BadInput
from mtlskit.pki import der

HANDSHAKE_CERTIFICATE = 11
HANDSHAKE_CERTIFICATE_REQUEST = 13
EXT_CERTIFICATE_AUTHORITIES = 47

ALERTS = {
    0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac", 40: "handshake_failure",
    42: "bad_certificate", 43: "unsupported_certificate", 44: "certificate_revoked",
    45: "certificate_expired", 46: "certificate_unknown", 47: "illegal_parameter", 48: "unknown_ca",
    49: "access_denied", 50: "decode_error", 51: "decrypt_error", 70: "protocol_version",
    71: "insufficient_security", 80: "internal_error", 90: "user_canceled",
    109: "missing_extension", 112: "unrecognized_name", 116: "certificate_required",
    120: "no_application_protocol",
}


class WireError(ValueError):
    """A handshake message that does not parse."""


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise WireError("truncated handshake message")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def number(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def vector(self, length_bytes: int) -> "_Reader":
        return _Reader(self.take(self.number(length_bytes)))

    def done(self) -> bool:
        return self.pos >= len(self.data)


def strip_header(message: bytes, expected_type: int) -> bytes:
    """Body of a handshake message given with its 4-byte header (type, uint24 length)."""
    if len(message) < 4 or message[0] != expected_type:
        raise WireError("not the expected handshake message")
    return message[4:4 + int.from_bytes(message[1:4], "big")]


def certificate_request_names(body: bytes, tls13: bool) -> list[x509.Name]:
    """The CA names of a CertificateRequest body (empty list: the server named none)."""
    reader = _Reader(body)
    if tls13:
        reader.vector(1)  # certificate_request_context
        extensions = reader.vector(2)
        while not extensions.done():
            kind, data = extensions.number(2), extensions.vector(2)
            if kind == EXT_CERTIFICATE_AUTHORITIES:
                return _names(data.vector(2))
        return []
    reader.vector(1)  # certificate_types
    reader.vector(2)  # supported_signature_algorithms
    return _names(reader.vector(2))


def _names(reader: _Reader) -> list[x509.Name]:
    names = []
    while not reader.done():
        names.append(parse_name(reader.vector(2).data))
    return names


def certificate_list(body: bytes, tls13: bool) -> list[x509.Certificate]:
    """The certificates of a Certificate message body, in the order sent."""
    reader = _Reader(body)
    if tls13:
        reader.vector(1)
    entries = reader.vector(3)
    certs = []
    while not entries.done():
        der = entries.vector(3).data
        if tls13:
            entries.vector(2)  # per-certificate extensions (OCSP staple, SCTs)
        try:
            certs.append(x509.load_der_x509_certificate(der))
        except ValueError as exc:
            raise WireError(f"unparseable certificate: {exc}") from None
    return certs


# --- DER, only what an X.501 Name needs (X.690 8.1; reader in mtlskit.pki.der) ---

def _tlv(data: bytes, pos: int) -> tuple[int, bytes, int]:
    """(tag, value, end) of the element at ``pos``; lengths need not be minimal here:
    the names are shown to the user, whatever encoder the server's TLS stack used."""
    try:
        tag, start, end = der.read_tlv(data, pos, minimal=False)
    except BadInput as exc:
        raise WireError(str(exc)) from None
    return tag, data[start:end], end


def _children(data: bytes) -> list[tuple[int, bytes]]:
    out, pos = [], 0
    while pos < len(data):
        tag, value, pos = _tlv(data, pos)
        out.append((tag, value))
    return out


def _oid(value: bytes) -> str:
    try:
        return der.decode_oid(value)
    except BadInput as exc:
        raise WireError(str(exc)) from None


_STRING_CODECS = {0x0C: "utf-8", 0x13: "ascii", 0x16: "ascii", 0x14: "latin-1", 0x1E: "utf-16-be",
                  0x1C: "utf-32-be"}


def parse_name(der: bytes) -> x509.Name:
    """Decode the DER of a Name (SEQUENCE OF SET OF AttributeTypeAndValue, RFC 5280 4.1.2.4)."""
    tag, body, end = _tlv(der, 0)
    if tag != 0x30 or end != len(der):
        raise WireError("a DistinguishedName is not a DER SEQUENCE")
    rdns = []
    for set_tag, rdn in _children(body):
        if set_tag != 0x31:
            raise WireError("a relative distinguished name is not a SET")
        attributes = []
        for _, atv in _children(rdn):
            (oid_tag, oid), (value_tag, value) = _children(atv)[:2]
            codec = _STRING_CODECS.get(value_tag, "latin-1")
            text = value.decode(codec, errors="replace")
            try:
                attributes.append(x509.NameAttribute(x509.ObjectIdentifier(_oid(oid)), text))
            except ValueError:  # e.g. a country name that is not 2 letters
                attributes.append(x509.NameAttribute(x509.ObjectIdentifier(_oid(oid)), text,
                                                     _type=x509.name._ASN1Type.UTF8String))
        rdns.append(x509.RelativeDistinguishedName(attributes))
    return x509.Name(rdns)
