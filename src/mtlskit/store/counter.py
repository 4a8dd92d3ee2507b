"""The change counter (table ``change_counters``, migration 0005_service) as the OCSP
source's change signal on databases other than SQLite.

Every transaction that changes a certificate (issue, revoke, renew) moves the counter of
topic ``certificates`` (``value = value + 1``); the row lock orders the bumps as the
transactions commit, so a reader that sees value N sees every change up to N. Audit-event
ids cannot serve: on PostgreSQL they are handed out when a transaction inserts and become
visible when it commits, out of order, so "everything after the highest id seen" misses a
slow transaction's event for good.

A watch polls the counter at most every ``poll_seconds`` (one indexed read of a one-row
table, on a connection of its own): a revocation committed by any process, replica or
host is answered by every replica within that bound plus one request.
"""

from __future__ import annotations

import time
from typing import Callable

from mtlskit.errors import InternalError, MtlskitError
from mtlskit.store.inventory import read_change_counter

POLL_SECONDS = 0.15


class CounterWatch:
    """``moved()``: has the counter moved since the last call (read at most every
    ``poll_seconds``)? ``value()``: the counter now."""

    def __init__(self, database_url: str, poll_seconds: float = POLL_SECONDS,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        from mtlskit.store.sql import Database

        self._db = Database.open(database_url)
        self._poll, self._monotonic = poll_seconds, monotonic
        self._next = 0.0
        self._seen: int | None = None

    def value(self) -> int:
        """The counter now. Raises InternalError when the database cannot be read."""
        try:
            with self._db.read() as tx:
                return read_change_counter(tx)
        except MtlskitError as exc:   # cannot connect (a refusal, already one line)
            raise InternalError(f"the inventory cannot be read: {exc.message}") from None
        except Exception as exc:      # a driver error: the connection broke
            self._db.close()          # the next read opens a new one
            raise InternalError(f"the inventory cannot be read: {type(exc).__name__}") from exc

    def moved(self) -> bool:
        now = self._monotonic()
        if now < self._next:
            return False
        self._next = now + self._poll
        try:
            value = self.value()
        except InternalError:
            return True   # the caller reads the marker now, and answers tryLater if it cannot
        if value == self._seen:
            return False
        self._seen = value
        return True

    def close(self) -> None:
        self._db.close()


class CounterStatusLookup:
    """A status lookup whose change marker is the change counter: statuses come from
    ``base``; when the counter moved, everything cached is stale (``changed_since``
    answers None: the source drops all it holds, a revocation being rare)."""

    def __init__(self, base, watch: CounterWatch) -> None:
        self._base, self._watch = base, watch

    def state(self, issuer: str, serial: int):
        return self._base.state(issuer, serial)

    def moved(self) -> bool:
        return self._watch.moved()

    def change_marker(self) -> int:
        return self._watch.value()

    def changed_since(self, marker: int) -> tuple[int, None]:
        return self._watch.value(), None
