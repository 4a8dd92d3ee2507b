"""The few DER (ITU-T X.690) operations the OCSP code needs. Pure; no I/O.

cryptography parses only single-certificate OCSP requests and builds only
single-response OCSP responses, so the request reader and the multi-response
assembly in :mod:`mtlskit.publish.ocsp` walk and write DER themselves. Only
definite, minimal lengths are accepted: that is what DER means (X.690 §10.1).
"""

from __future__ import annotations

import datetime as dt

from mtlskit.errors import BadInput

SEQUENCE = 0x30
OCTET_STRING = 0x04
INTEGER = 0x02
BOOLEAN = 0x01
NULL = 0x05
OID = 0x06
ENUMERATED = 0x0A
BIT_STRING = 0x03
GENERALIZED_TIME = 0x18


def context(number: int, constructed: bool = True) -> int:
    """The identifier octet of a context-specific tag [number] (numbers below 31)."""
    return 0x80 | (0x20 if constructed else 0) | number


def read_tlv(data: bytes, offset: int = 0, end: int | None = None) -> tuple[int, int, int]:
    """Read one element at ``offset``; return (tag, value_start, value_end).

    Raises:
        BadInput: truncated data, a high tag number, an indefinite or non-minimal length.
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
        if length < 0x80 or data[pos] == 0:
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


def decode_integer(value: bytes) -> int:
    """A two's-complement INTEGER value (X.690 §8.3), minimal encoding required."""
    if not value:
        raise BadInput("DER: empty INTEGER")
    if len(value) > 1 and ((value[0] == 0 and value[1] < 0x80) or (value[0] == 0xFF and value[1] >= 0x80)):
        raise BadInput("DER: INTEGER not minimally encoded")
    return int.from_bytes(value, "big", signed=True)


def encode(tag: int, content: bytes) -> bytes:
    """One TLV with a definite, minimal length."""
    length = len(content)
    if length < 0x80:
        return bytes((tag, length)) + content
    size = (length.bit_length() + 7) // 8
    return bytes((tag, 0x80 | size)) + length.to_bytes(size, "big") + content


def sequence(*parts: bytes) -> bytes:
    return encode(SEQUENCE, b"".join(parts))


def integer(value: int) -> bytes:
    size = value.bit_length() // 8 + 1  # room for the sign bit
    return encode(INTEGER, value.to_bytes(size, "big", signed=True))


def generalized_time(value: dt.datetime) -> bytes:
    """GeneralizedTime in UTC with whole seconds, as RFC 5280 §4.1.2.5.2 requires."""
    value = value.astimezone(dt.timezone.utc)
    return encode(GENERALIZED_TIME, value.strftime("%Y%m%d%H%M%SZ").encode("ascii"))


def oid(dotted: str) -> bytes:
    """An OBJECT IDENTIFIER element from its dotted form (X.690 §8.19)."""
    arcs = [int(part) for part in dotted.split(".")]
    body = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return encode(OID, bytes(body))
