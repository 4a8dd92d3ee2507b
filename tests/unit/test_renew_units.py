"""Pure parts of renewal: when deploy renews, and the directory swap (both ways)."""

from __future__ import annotations

import datetime as dt

import pytest

from mtlskit.deploy.renewal import due_for_renewal
from mtlskit.lifecycle import swap_dirs

START = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
END = START + dt.timedelta(days=30)


@pytest.mark.parametrize("days_in, due", [(0, False), (19, False), (20, False), (20.01, True), (29, True), (31, True)])
def test_due_once_less_than_a_third_is_left(days_in, due):
    assert due_for_renewal(START, END, START + dt.timedelta(days=days_in)) is due


@pytest.mark.parametrize("native", [True, False])
def test_exchange_swaps_the_two_sets(tmp_path, monkeypatch, native):
    live, staged = tmp_path / "live", tmp_path / ".live.partial"
    live.mkdir()
    staged.mkdir()
    (live / "cert.pem").write_text("old")
    (live / "only-old").write_text("x")
    (staged / "cert.pem").write_text("new")
    (staged / "cert.pem.prev").write_text("old")
    if not native:
        monkeypatch.setattr(swap_dirs, "_renameat2", False)
    swap_dirs.exchange(str(staged), str(live))
    assert (live / "cert.pem").read_text() == "new" and (live / "cert.pem.prev").read_text() == "old"
    assert not (live / "only-old").exists()
    assert staged.exists()   # what the caller removes: the old set
