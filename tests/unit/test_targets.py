"""Parsing one SERIAL|NAME argument: serial:HEX, name:NAME, or bare (pure, no database)."""

from __future__ import annotations

import pytest

from mtlskit.errors import BadInput
from mtlskit.store.inventory import Target, parse_serial, parse_target


@pytest.mark.parametrize("text, serial", [
    ("1f", 0x1F), ("1F", 0x1F), ("0x1f", 0x1F), ("00001f", 0x1F), ("00:1F", 0x1F),
    ("7b:22:00:ad", 0x7B2200AD), ("  ab  ", 0xAB), ("0", 0), ("00", 0),
    ("f" * 40, int("f" * 40, 16)), ("0" * 8 + "f" * 40, int("f" * 40, 16)),  # leading zeros are free
])
def test_serial_spellings(text, serial):
    assert parse_serial(text) == serial


@pytest.mark.parametrize("text", ["", ":", "0x", "zz", "1g", "f" * 41, "alice", "12 34", "-1", "1f\n2"])
def test_not_serials(text):
    assert parse_serial(text) is None


@pytest.mark.parametrize("text, expected", [
    ("alice", Target("alice", "alice", None)),
    ("deadbeef", Target("deadbeef", "deadbeef", 0xDEADBEEF)),          # bare: both
    ("serial:DE:AD:be:ef", Target("serial:DE:AD:be:ef", None, 0xDEADBEEF)),
    ("SERIAL:00deadbeef", Target("SERIAL:00deadbeef", None, 0xDEADBEEF)),
    ("name:deadbeef", Target("name:deadbeef", "deadbeef", None)),
    ("Name:alice", Target("Name:alice", "alice", None)),
    (" serial:1 ", Target("serial:1", None, 1)),
])
def test_targets(text, expected):
    assert parse_target(text) == expected


@pytest.mark.parametrize("text, message", [
    ("serial:", "is not a serial"), ("serial:alice", "is not a serial"),
    ("serial:" + "f" * 41, "is not a serial"), ("name:", "names no certificate"),
    ("name:  ", "names no certificate"), ("", "an empty SERIAL or NAME"), ("   ", "an empty SERIAL or NAME"),
])
def test_refused_targets(text, message):
    with pytest.raises(BadInput, match=message):
        parse_target(text)


def test_kinds_for_messages():
    assert parse_target("nobody").kinds == "name or serial"
    assert parse_target("name:nobody").kinds == "name"
    assert parse_target("serial:ab").kinds == "serial"
