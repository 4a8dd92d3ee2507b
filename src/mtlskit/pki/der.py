"""DER (ITU-T X.690) encoding and strict decoding: the one codec of mtlskit. Pure; no I/O.

Two users write DER by hand: the CRL builder (:mod:`mtlskit.publish.crl`), whose
entry encoder runs once per revoked certificate and must stay fast for CRLs with a
million entries, and the OCSP code (:mod:`mtlskit.publish.ocsp`), which reads requests
that cryptography cannot (several certificates) and assembles multi-response answers.

Writing always produces definite, minimal lengths. Reading accepts only what DER
allows (X.690 §10.1: definite, minimal lengths) and raises ``BadInput`` for anything
else, since what it reads (OCSP requests, stored CRLs) may come from outside. Readers
work on ``bytes`` and ``memoryview`` alike.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools

from mtlskit.errors import BadInput

BOOLEAN = 0x01
INTEGER = 0x02
BIT_STRING = 0x03
OCTET_STRING = 0x04
NULL = 0x05
OID = 0x06
ENUMERATED = 0x0A
UTC_TIME = 0x17
GENERALIZED_TIME = 0x18
SEQUENCE = 0x30


def context(number: int, constructed: bool = True) -> int:
    """The identifier octet of a context-specific tag [number] (numbers below 31)."""
    return 0x80 | (0x20 if constructed else 0) | number


# --- writing ----------------------------------------------------------------------

def encode_length(length: int) -> bytes:
    """The length octets: short form below 128, else minimal long form (X.690 §8.1.3)."""
    if length < 0:
        raise ValueError("negative length")
    if length < 0x80:
        return bytes((length,))
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def header(tag: int, length: int) -> bytes:
    """Tag and length octets of a value whose content is ``length`` bytes long, for
    writing large values piece by piece without joining them first."""
    return bytes((tag,)) + encode_length(length)


def encode(tag: int, content: bytes) -> bytes:
    """One TLV with a definite, minimal length. The short form is inlined: this runs
    several times per CRL entry."""
    length = len(content)
    if length < 0x80:
        return bytes((tag, length)) + content
    size = (length.bit_length() + 7) // 8
    return bytes((tag, 0x80 | size)) + length.to_bytes(size, "big") + content


def sequence(*parts: bytes) -> bytes:
    """A SEQUENCE of already encoded elements."""
    return encode(SEQUENCE, b"".join(parts))


def integer(value: int) -> bytes:
    """A two's-complement INTEGER in the fewest octets (X.690 §8.3)."""
    magnitude = value if value >= 0 else ~value
    size = magnitude.bit_length() // 8 + 1  # room for the sign bit
    return encode(INTEGER, value.to_bytes(size, "big", signed=True))


@functools.lru_cache(maxsize=256)  # a few dozen OIDs, encoded per certificate or entry
def oid(dotted: str) -> bytes:
    """An OBJECT IDENTIFIER element from its dotted form (X.690 §8.19).

    Raises:
        ValueError: fewer than two arcs, or a first/second arc X.660 does not allow.
    """
    arcs = [int(part) for part in dotted.split(".")]
    if len(arcs) < 2 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] >= 40):
        raise ValueError(f"invalid OID {dotted!r}")
    body = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return encode(OID, bytes(body))


def generalized_time(value: dt.datetime) -> bytes:
    """GeneralizedTime in UTC with whole seconds, as RFC 5280 §4.1.2.5.2 requires
    (and OCSP, RFC 6960 §4.2.2.1, uses for every time)."""
    value = value.astimezone(dt.timezone.utc)
    return encode(GENERALIZED_TIME, value.strftime("%Y%m%d%H%M%SZ").encode("ascii"))


def x509_time(when: dt.datetime) -> bytes:
    """An X.509 Time (RFC 5280 §4.1.2.5, §5.1.2.4): UTCTime through 2049, GeneralizedTime
    from 2050, both in UTC ("Z"), with seconds and no fractions.

    Raises:
        ValueError: a naive datetime.
    """
    if when.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    if when.utcoffset():  # a CRL of a million entries encodes a million times: no strftime
        when = when.astimezone(dt.timezone.utc)
    fields = (when.month, when.day, when.hour, when.minute, when.second)
    if 1950 <= when.year <= 2049:
        return encode(UTC_TIME, b"%02d%02d%02d%02d%02d%02dZ" % (when.year % 100, *fields))
    return encode(GENERALIZED_TIME, b"%04d%02d%02d%02d%02d%02dZ" % (when.year, *fields))


def extension(dotted: str, value: bytes, critical: bool = False) -> bytes:
    """Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }
    (RFC 5280 §4.1). DER omits a FALSE critical flag (X.690 §11.5: DEFAULT values are
    not encoded)."""
    flag = encode(BOOLEAN, b"\xff") if critical else b""
    return encode(SEQUENCE, oid(dotted) + flag + encode(OCTET_STRING, value))


# --- reading ----------------------------------------------------------------------

def pem(label: str, der_bytes: bytes) -> bytes:
    """RFC 7468 PEM of ``der_bytes`` under ``label`` ("CERTIFICATE", "X509 CRL"): base64
    in lines of exactly 64 characters but the last, as cryptography and openssl write it.

    Encoded in blocks whose size is a multiple of 48 bytes (= 64 base64 characters), so
    lines never straddle blocks: about 5 ms per MB for a CRL, where a per-line loop needs 25.
    """
    parts = [b"-----BEGIN %s-----\n" % label.encode("ascii")]
    block = 48 * 2048
    for start in range(0, len(der_bytes), block):
        encoded = base64.b64encode(der_bytes[start:start + block])
        parts.append(b"\n".join([encoded[i:i + 64] for i in range(0, len(encoded), 64)]))
        parts.append(b"\n")
    parts.append(b"-----END %s-----\n" % label.encode("ascii"))
    return b"".join(parts)


def read_tlv(data: bytes | memoryview, offset: int = 0, end: int | None = None, *,
             minimal: bool = True) -> tuple[int, int, int]:
    """Read one element at ``offset``; return (tag, value_start, value_end).

    ``minimal=False`` also accepts a long-form length that fits the short form or has
    leading zero octets (BER, X.690 §8.1.3.5): only for reading what other TLS
    implementations send for display (``mtlskit.verify.tlswire``), never for OCSP or CRLs.

    Raises:
        BadInput: truncated data, a high tag number, an indefinite or (when ``minimal``)
            non-minimal length.
    """
    end = len(data) if end is None else end
    if offset + 2 > end:
        raise BadInput("DER: truncated element")
    tag = data[offset]
    if tag & 0x1F == 0x1F:
        raise BadInput("DER: high tag numbers are not used in OCSP")
    first = data[offset + 1]
    pos = offset + 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + count > end:
            raise BadInput("DER: indefinite or oversized length")
        length = int.from_bytes(data[pos:pos + count], "big")
        if minimal and (length < 0x80 or data[pos] == 0):
            raise BadInput("DER: length not minimally encoded")
        pos += count
    if pos + length > end:
        raise BadInput("DER: element runs past its container")
    return tag, pos, pos + length


def children(data: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """The elements inside a constructed value: (tag, element_start, value_start, value_end)."""
    found = []
    pos = start
    while pos < end:
        tag, vstart, vend = read_tlv(data, pos, end)
        found.append((tag, pos, vstart, vend))
        pos = vend
    return found


def expect(data: bytes, offset: int, tag: int, end: int | None = None) -> tuple[int, int]:
    """Read one element that must carry ``tag``; return (value_start, value_end)."""
    found, vstart, vend = read_tlv(data, offset, end)
    if found != tag:
        raise BadInput(f"DER: expected tag 0x{tag:02x}, found 0x{found:02x}")
    return vstart, vend


def decode_oid(value: bytes) -> str:
    """The dotted form of an OBJECT IDENTIFIER's content octets (X.690 §8.19)."""
    arcs, n = [], 0
    for byte in value:
        n = (n << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(n)
            n = 0
    if not arcs:
        raise BadInput("DER: empty OID")
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in [first, arcs[0] - 40 * first, *arcs[1:]])


def decode_integer(value: bytes) -> int:
    """A two's-complement INTEGER value (X.690 §8.3), minimal encoding required."""
    if not value:
        raise BadInput("DER: empty INTEGER")
    if len(value) > 1 and ((value[0] == 0 and value[1] < 0x80) or (value[0] == 0xFF and value[1] >= 0x80)):
        raise BadInput("DER: INTEGER not minimally encoded")
    return int.from_bytes(value, "big", signed=True)
