"""`--json` output: the fast path for lists of flat objects writes exactly what
json.dumps(indent=2) writes, and everything else still goes through json.dumps."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from mtlskit.cli.common import _json_default, json_text

WHEN = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize("data", [
    [{"name": "dev-1", "serial": "5f3a", "not_after": WHEN, "directory": Path("fleet/dev-1")}] * 3,
    [{"text": 'x},\n    {"y": 1', "none": None, "yes": True, "no": False, "n": -3, "f": 1.5e-7}],
    [{"unicode": "Zoë 🚀 \u2028 \t \\ \"q\"", "ctrl": "\x00\x1f"}],
    [{"a": 1}, {"b": 2, "c": 3}],              # objects of different shapes
    [{"a": 1}, {"b": [1, 2]}],                  # a nested value: json.dumps
    [{"a": {"b": 1}}], [{"a": ()}], [{}], [{"a": 1}, {}], [], [1, "x"], {"a": [1]}, "text", None,
    # lists of scalars (the SANs of `list --json`), between other members and empty
    [{"name": "a", "sans": ["DNS:a", "IP:10.0.0.1"], "when": WHEN}, {"name": "b", "sans": []}],
    [{"sans": ["URI:https://x/y", 'q"},\n    {', None, 2, 1.5, True, WHEN]}] * 3,
    [{"a": [[1]]}], [{"a": [{"b": 1}]}], [{"a": [()]}],          # containers inside: json.dumps
    [{"hole": "\x00" + "0" * 16 + "0", "sans": ["x"]}],           # a string shaped like a hole
])
def test_same_text_as_json_dumps_indent_2(data):
    assert json_text(data) == json.dumps(data, indent=2, default=_json_default)


def test_unknown_values_are_still_refused():
    with pytest.raises(TypeError, match="set"):
        json_text([{"a": {1}}])
    with pytest.raises(TypeError, match="object"):
        json_text([{"a": object()}])


def test_thousands_of_objects_with_lists_take_the_fast_path(monkeypatch):
    records = [{"name": f"n{i}", "sans": [f"DNS:n{i}.example"], "not_after": WHEN} for i in range(3000)]
    expected = json.dumps(records, indent=2, default=_json_default)
    monkeypatch.setattr(json, "dumps", lambda *a, **k: pytest.fail("the slow path"))
    assert json_text(records) == expected
