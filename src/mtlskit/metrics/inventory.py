"""The inventory's aggregates for a scrape, kept CACHE_SECONDS per serving process.

Computed in SQL (:mod:`mtlskit.store.metrics`: GROUP BY, states derived from the dates);
with 100,000 certificates the query takes tens of milliseconds (README, bench/bench_metrics.py),
so one scrape every few seconds per worker never queues behind another.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Callable

from mtlskit.clock import Clock
from mtlskit.store.metrics import InventoryAggregates, inventory_aggregates

CACHE_SECONDS = 10.0
EXPIRING_WITHIN = dt.timedelta(days=30)   # the "expiring" state: not renewed, expires within 30 days


class InventoryGauges:
    """The latest aggregates of one inventory, recomputed when older than ``ttl`` seconds."""

    def __init__(self, db, clock: Clock, ttl: float = CACHE_SECONDS,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._db, self._clock, self._ttl, self._monotonic = db, clock, ttl, monotonic
        self._cached: InventoryAggregates | None = None
        self._until = 0.0
        self.queries = 0  # how many times the SQL ran (tests check the cache with it)

    def current(self) -> InventoryAggregates:
        if self._cached is None or self._monotonic() >= self._until:
            self._cached = inventory_aggregates(self._db, self._clock.now(), EXPIRING_WITHIN)
            self._until = self._monotonic() + self._ttl
            self.queries += 1
        return self._cached
