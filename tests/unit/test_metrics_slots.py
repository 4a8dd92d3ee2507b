"""The per-worker slot files: counts of several processes summed by key, a dead process's
counts kept once, a replacement counting in a file of its own, the capacity bound."""

from __future__ import annotations

import os
import types

from mtlskit.metrics import slots as slots_module
import pytest

from mtlskit.metrics.recorder import LATENCY_BUCKETS, OCSP_STATUSES, Recorder, ocsp_tallies, series_key
from mtlskit.metrics.slots import Slots, read_directory


def _child_counts(directory, key: str, times: int) -> None:
    """A forked process counts ``times`` then dies without any clean-up (os._exit)."""
    pid = os.fork()
    if pid == 0:
        try:
            counter = Slots(directory)
            for _ in range(times):
                counter.add(key)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def test_counts_of_several_processes_are_summed_and_a_dead_ones_are_kept(tmp_path):
    mine = Slots(tmp_path)
    mine.add("a", 2)
    _child_counts(tmp_path, "a", 3)
    _child_counts(tmp_path, "b", 5)
    assert read_directory(tmp_path) == {"a": 5.0, "b": 5.0}
    assert len(list(tmp_path.glob("*.slots"))) == 3  # one file per process, the dead ones' included


def test_a_process_reusing_a_dead_ones_pid_starts_its_own_file(tmp_path, monkeypatch):
    monkeypatch.setattr(slots_module.os, "getpid", lambda: 4242)
    first, second = Slots(tmp_path), Slots(tmp_path)
    first.add("x", 7)
    second.add("x", 1)
    assert first.path != second.path
    assert read_directory(tmp_path) == {"x": 8.0}


def test_a_reader_sees_keys_added_after_it_last_read(tmp_path):
    counter = Slots(tmp_path)
    counter.add("early")
    assert read_directory(tmp_path) == {"early": 1.0}
    counter.add("late", 4)
    assert read_directory(tmp_path) == {"early": 1.0, "late": 4.0}


def test_files_that_are_not_slot_files_are_ignored(tmp_path):
    Slots(tmp_path).add("k")
    (tmp_path / "stray.slots").write_bytes(b"not a slot file")
    (tmp_path / "other.txt").write_text("x")
    assert read_directory(tmp_path) == {"k": 1.0}


def test_series_beyond_the_capacity_are_dropped_not_crashed(monkeypatch):
    monkeypatch.setattr(slots_module, "CAPACITY", 3)
    counter = Slots()
    for name in "abcde":
        counter.add(name)
    assert counter.read() == {"a": 1.0, "b": 1.0, "c": 1.0}


def test_the_latency_histogram_puts_each_answer_in_its_bucket():
    recorder = Recorder(Slots())
    for status, seconds in (("good", 0.00003), ("good", 0.00005), ("revoked", 0.0002), ("try_later", 2.0)):
        recorder.ocsp_reply(types.SimpleNamespace(status=status), seconds)  # the bounds are inclusive (le)
    recorder.ocsp_reply(None, 0.00001)
    by_status, by_bucket = ocsp_tallies(recorder.slots.read())
    assert by_bucket[0] == 3 and by_bucket[LATENCY_BUCKETS.index(0.00025)] == 1 and by_bucket[-1] == 1
    assert sum(by_bucket) == 5
    assert by_status == {**dict.fromkeys(OCSP_STATUSES, 0.0), "good": 2, "revoked": 1, "try_later": 1,
                         "method_not_allowed": 1}
    assert recorder.slots.read()[series_key("mtlskit_ocsp_response_duration_seconds_sum")] == \
        pytest.approx(0.00003 + 0.00005 + 0.0002 + 2.0 + 0.00001)


def test_request_labels_are_bounded():
    recorder = Recorder(Slots())
    recorder.request(None, "GET", 404)
    recorder.request("/crl/{filename}", "X" * 1000, 200)
    recorder.request("/healthz", "GET", 1234)
    keys = {k for k in recorder.slots.read() if "http_requests" in k}
    assert keys == {series_key("mtlskit_http_requests_total", route="unmatched", method="GET", code="404"),
                    series_key("mtlskit_http_requests_total", route="/crl/{filename}", method="other", code="200"),
                    series_key("mtlskit_http_requests_total", route="/healthz", method="GET", code="0")}


def test_dead_workers_files_are_folded_into_the_archive_and_counted_once(tmp_path):
    mine = Slots(tmp_path)
    mine.add("a", 1)
    _child_counts(tmp_path, "a", 3)
    _child_counts(tmp_path, "b", 2)
    assert read_directory(tmp_path, fold_dead=True) == {"a": 4.0, "b": 2.0}
    assert [p.name for p in tmp_path.glob("*.slots")] == [mine.path.name]  # the dead ones' files are gone
    _child_counts(tmp_path, "a", 5)
    assert read_directory(tmp_path, fold_dead=True) == {"a": 9.0, "b": 2.0}
    assert read_directory(tmp_path) == {"a": 9.0, "b": 2.0}
    assert len(list(tmp_path.glob("*.slots"))) == 1


def test_a_crash_between_archiving_and_deleting_counts_nothing_twice(tmp_path, monkeypatch):
    _child_counts(tmp_path, "a", 3)
    monkeypatch.setattr(slots_module.Path, "unlink", lambda self, missing_ok=False: None)  # the crash
    assert read_directory(tmp_path, fold_dead=True) == {"a": 3.0}
    monkeypatch.undo()
    assert len(list(tmp_path.glob("worker-*.slots"))) == 1  # archived, still there
    assert read_directory(tmp_path) == {"a": 3.0}
    assert read_directory(tmp_path, fold_dead=True) == {"a": 3.0}
    _child_counts(tmp_path, "a", 1)
    assert read_directory(tmp_path, fold_dead=True) == {"a": 4.0}
    assert not list(tmp_path.glob("worker-*.slots"))
