"""Time, injected. Every function that looks at the time takes a Clock."""

from __future__ import annotations

import datetime as dt
from typing import Protocol


class Clock(Protocol):
    def now(self) -> dt.datetime:
        """Return the current time, timezone-aware, in UTC."""


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc)


class FixedClock:
    """A clock that only moves when told to; for tests and for `--at TIME`."""

    def __init__(self, at: dt.datetime) -> None:
        if at.tzinfo is None:
            at = at.replace(tzinfo=dt.timezone.utc)
        self._at = at

    def now(self) -> dt.datetime:
        return self._at

    def advance(self, delta: dt.timedelta) -> None:
        self._at = self._at + delta
