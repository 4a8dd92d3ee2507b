"""Waiting on processes the tests kill (tests/security/test_interrupted_*.py)."""

from __future__ import annotations

import os
import time


def wait_group_gone(pgid: int, within: float) -> None:
    """The workers die with the parent (they hold the journal's lock until then)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.005)
    raise AssertionError("workers outlived their killed parent")
