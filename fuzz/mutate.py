"""Mutations of real inputs, as hypothesis strategies: bit flips, truncations, DER length
octets edited, slices duplicated or dropped, nested garbage inserted."""

from __future__ import annotations

from hypothesis import strategies as st

from mtlskit.errors import BadInput
from mtlskit.pki import der


def header_offsets(data: bytes) -> list[int]:
    """Offsets of the length octet of every TLV found by walking the DER of ``data``."""
    found: list[int] = []

    def walk(start: int, end: int, depth: int) -> None:
        pos = start
        while pos < end and depth < 12:
            try:
                tag, vstart, vend = der.read_tlv(data, pos, end)
            except (BadInput, IndexError, ValueError):
                return
            found.append(pos + 1)
            if tag & 0x20 or tag == der.OCTET_STRING:  # constructed, or DER wrapped in an OCTET STRING
                walk(vstart, vend, depth + 1)
            pos = vend

    walk(0, len(data), 0)
    return found


def _garbage() -> st.SearchStrategy[bytes]:
    leaf = st.one_of(st.binary(max_size=12),
                     st.builds(lambda tag, body: der.encode(tag, body),
                               st.sampled_from([0x02, 0x04, 0x05, 0x06, 0x30, 0x31, 0xA0, 0xA1, 0xA2, 0x01, 0x0A]),
                               st.binary(max_size=10)))
    return st.recursive(leaf, lambda inner: st.builds(lambda tag, parts: der.encode(tag, b"".join(parts)),
                                                      st.sampled_from([0x30, 0xA0, 0xA2, 0x04]),
                                                      st.lists(inner, max_size=3)), max_leaves=6)


@st.composite
def _mutation(draw, data: bytes) -> bytes:
    kind = draw(st.sampled_from(["flip", "truncate", "byte", "length", "insert", "delete", "duplicate", "append"]))
    size = len(data)
    if size == 0:
        return draw(_garbage())
    at = draw(st.integers(0, size - 1))
    if kind == "flip":
        return data[:at] + bytes((data[at] ^ (1 << draw(st.integers(0, 7))),)) + data[at + 1:]
    if kind == "truncate":
        return data[:at]
    if kind == "byte":
        return data[:at] + bytes((draw(st.integers(0, 255)),)) + data[at + 1:]
    if kind == "length":
        offsets = header_offsets(data)
        if not offsets:
            return data[:at]
        pos = draw(st.sampled_from(offsets))
        value = draw(st.one_of(st.integers(0, 255), st.sampled_from([0x80, 0x81, 0x82, 0x84, 0x89, 0xFF]),
                               st.integers(-3, 3).map(lambda d: (data[pos] + d) % 256)))
        return data[:pos] + bytes((value,)) + data[pos + 1:]
    if kind == "insert":
        return data[:at] + draw(_garbage()) + data[at:]
    if kind == "delete":
        return data[:at] + data[at + draw(st.integers(1, 16)):]
    if kind == "duplicate":
        end = draw(st.integers(at + 1, min(size, at + 64)))
        where = draw(st.integers(0, size))
        return data[:where] + data[at:end] + data[where:]
    return data + draw(_garbage())


@st.composite
def mutated(draw, seeds: list[bytes], max_mutations: int = 3) -> bytes:
    """A seed, unchanged or with 1..max_mutations mutations applied in turn."""
    data = draw(st.sampled_from(seeds))
    for _ in range(draw(st.integers(0, max_mutations))):
        data = draw(_mutation(data))
    return data
