"""The DER codec (mtlskit.pki.der) against X.690 vectors: the writers the CRL and OCSP
builders share, and the strict reader's refusals."""

from __future__ import annotations

import datetime as dt

import pytest

from mtlskit.errors import BadInput
from mtlskit.pki import der


@pytest.mark.parametrize("value, expected", [
    (0, "020100"), (1, "020101"), (127, "02017f"), (128, "02020080"), (255, "020200ff"),
    (256, "02020100"), (-1, "0201ff"), (-128, "020180"), (-129, "0202ff7f"),
])
def test_integer_vectors(value, expected):
    assert der.integer(value).hex() == expected


@pytest.mark.parametrize("length, expected", [
    (0, "00"), (127, "7f"), (128, "8180"), (255, "81ff"), (256, "820100"), (70000, "83011170"),
])
def test_length_short_and_long_form(length, expected):
    assert der.encode_length(length).hex() == expected


def test_length_refuses_negative():
    with pytest.raises(ValueError):
        der.encode_length(-1)


@pytest.mark.parametrize("oid, expected", [
    ("1.2.840.113549", "06062a864886f70d"),
    ("1.2.840.10045.4.3.2", "06082a8648ce3d040302"),
    ("2.5.29.20", "0603551d14"),
    ("1.3.101.112", "06032b6570"),
    ("2.999.3", "0603883703"),  # X.690 8.19.5 example: first subidentifier 1079
])
def test_oid_vectors(oid, expected):
    assert der.oid(oid).hex() == expected


@pytest.mark.parametrize("bad", ["1", "3.1", "1.40", "a.b"])
def test_oid_refuses_invalid(bad):
    with pytest.raises(ValueError):
        der.oid(bad)


def test_time_utctime_until_2049_generalized_from_2050():
    utc = dt.timezone.utc
    assert der.x509_time(dt.datetime(2049, 12, 31, 23, 59, 59, tzinfo=utc)) == b"\x17\x0d491231235959Z"
    assert der.x509_time(dt.datetime(2050, 1, 1, tzinfo=utc)) == b"\x18\x0f20500101000000Z"
    # fractions are dropped, other offsets are converted to UTC
    plus2 = dt.timezone(dt.timedelta(hours=2))
    assert der.x509_time(dt.datetime(2026, 1, 1, 2, 0, 0, 999, tzinfo=plus2)) == b"\x17\x0d260101000000Z"


def test_time_refuses_naive():
    with pytest.raises(ValueError):
        der.x509_time(dt.datetime(2026, 1, 1))


@pytest.mark.parametrize("size", [0, 1, 127, 128, 255, 256, 70000])
def test_encode_is_header_then_content(size):
    content = b"\x5a" * size
    assert der.encode(0x04, content) == der.header(0x04, size) + content
    tag, start, end = der.read_tlv(der.encode(0x04, content))
    assert (tag, end - start) == (0x04, size)


def test_generalized_time_is_utc_whole_seconds():
    plus2 = dt.timezone(dt.timedelta(hours=2))
    assert der.generalized_time(dt.datetime(2026, 1, 1, 2, 0, 0, 999, tzinfo=plus2)) == b"\x18\x0f20260101000000Z"


def test_extension_omits_false_critical_flag():
    assert der.extension("2.5.29.20", b"\x02\x01\x05") == bytes.fromhex("300a0603551d140403020105")
    assert der.extension("2.5.29.20", b"\x02\x01\x05", critical=True) == bytes.fromhex("300d0603551d140101ff0403020105")


@pytest.mark.parametrize("bad, message", [
    (b"\x30", "DER: truncated element"),
    (b"\x1f\x01\x00", "DER: high tag numbers are not used in OCSP"),
    (b"\x30\x80", "DER: indefinite or oversized length"),
    (b"\x30\x85\x00\x00\x00\x00\x01", "DER: indefinite or oversized length"),
    (b"\x30\x81\x05abcde", "DER: length not minimally encoded"),
    (b"\x30\x82\x00\x80" + b"a" * 128, "DER: length not minimally encoded"),
    (b"\x30\x05\x02\x01", "DER: element runs past its container"),
])
def test_read_tlv_refuses_what_is_not_der(bad, message):
    with pytest.raises(BadInput) as caught:
        der.read_tlv(bad)
    assert str(caught.value) == message
    with pytest.raises(BadInput):
        der.read_tlv(memoryview(bad))


@pytest.mark.parametrize("value", [b"\x00\x7f", b"\xff\x80", b""])
def test_decode_integer_refuses_non_minimal(value):
    with pytest.raises(BadInput):
        der.decode_integer(value)


@pytest.mark.parametrize("value", [0, 1, 127, 128, -1, -128, -129, 2**64])
def test_decode_integer_round_trips(value):
    tag, start, end = der.read_tlv(der.integer(value))
    assert der.decode_integer(der.integer(value)[start:end]) == value


def test_read_tlv_lenient_accepts_non_minimal_lengths_only():
    assert der.read_tlv(b"\x30\x81\x05abcde", minimal=False) == (0x30, 3, 8)
    assert der.read_tlv(b"\x30\x82\x00\x05abcde", minimal=False) == (0x30, 4, 9)
    with pytest.raises(BadInput):
        der.read_tlv(b"\x30\x80abcde\x00\x00", minimal=False)  # indefinite length is never DER
    with pytest.raises(BadInput):
        der.read_tlv(b"\x30\x81\x09abcde", minimal=False)


@pytest.mark.parametrize("dotted", ["1.2.840.113549", "2.5.4.3", "2.999.3", "0.9.2342.19200300.100.1.25"])
def test_decode_oid_round_trips(dotted):
    _, start, end = der.read_tlv(der.oid(dotted))
    assert der.decode_oid(der.oid(dotted)[start:end]) == dotted


def test_decode_oid_refuses_empty():
    with pytest.raises(BadInput):
        der.decode_oid(b"")
