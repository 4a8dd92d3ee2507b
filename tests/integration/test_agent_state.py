"""The agent's failure file: private, atomic, round-trips, and a damaged one is no failure."""

from __future__ import annotations

import datetime as dt
import stat

from mtlskit.lifecycle.agent_state import Failure, load_state, save_state

AT = dt.datetime(2027, 5, 1, 8, 30, tzinfo=dt.timezone.utc)


def test_round_trip_private(tmp_path):
    path = tmp_path / "agent-state.json"
    failures = {"intermediate:abc": Failure(3, AT, "the CA key cannot be used", ca_down=True, saw_down=True,
                                            target="web serial:abc", expires=AT + dt.timedelta(days=1)),
                "ca": Failure(1, None, "no passphrase")}
    save_state(path, failures)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_state(path) == failures
    assert not list(tmp_path.glob(".*tmp*")) and [p.name for p in tmp_path.iterdir()] == ["agent-state.json"]


def test_missing_damaged_or_huge_file_means_no_failures(tmp_path):
    path = tmp_path / "agent-state.json"
    assert load_state(path) == {}
    for damaged in (b"{not json", b"[]", b'{"failures": {"x": {"failures": "many"}}}', b"\xff\xfe"):
        path.write_bytes(damaged)
        assert load_state(path) == {}
    path.write_bytes(b" " * (17 * 1024 * 1024))
    assert load_state(path) == {}
