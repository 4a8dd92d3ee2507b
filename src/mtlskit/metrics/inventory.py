"""The inventory's aggregates for a scrape, computed at most once per CACHE_SECONDS.

Computed in SQL (:mod:`mtlskit.store.metrics`: GROUP BY, states derived from the dates).
With 100,000 certificates the query takes 150-250 ms on SQLite here (bench/bench_metrics.py,
README), so it is not run per scrape: each process keeps the result CACHE_SECONDS, and the
workers of one `serve` share it through a file of their private metrics directory, so the
query runs once per interval for the whole server, not once per worker.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path
from typing import Callable

from mtlskit.clock import Clock
from mtlskit.store.metrics import CertificateGroup, DeploymentExpiry, InventoryAggregates, inventory_aggregates

CACHE_SECONDS = 30.0
EXPIRING_WITHIN = dt.timedelta(days=30)   # the "expiring" state: not renewed, expires within 30 days
SHARED_FILE = "inventory.json"


class InventoryGauges:
    """The latest aggregates of one inventory, recomputed when older than ``ttl`` seconds.

    Args:
        shared_dir: the metrics directory of `serve` (its workers share the result there);
            None keeps it in this process only.
        monotonic: a clock shared by the processes (CLOCK_MONOTONIC is, on Linux).
    """

    def __init__(self, db, clock: Clock, ttl: float = CACHE_SECONDS,
                 monotonic: Callable[[], float] = time.monotonic, shared_dir: Path | None = None) -> None:
        self._db, self._clock, self._ttl, self._monotonic = db, clock, ttl, monotonic
        self._shared = Path(shared_dir) / SHARED_FILE if shared_dir is not None else None
        self._cached: InventoryAggregates | None = None
        self._until = 0.0
        self.queries = 0  # how many times this process ran the SQL (tests check the cache with it)

    def current(self) -> InventoryAggregates:
        now = self._monotonic()
        if self._cached is not None and now < self._until:
            return self._cached
        shared = self._read_shared(now)
        if shared is not None:
            self._cached, self._until = shared
            return self._cached
        self._cached = inventory_aggregates(self._db, self._clock.now(), EXPIRING_WITHIN)
        self._until = now + self._ttl
        self.queries += 1
        self._write_shared(self._cached, self._until)
        return self._cached

    def _read_shared(self, now: float) -> tuple[InventoryAggregates, float] | None:
        if self._shared is None:
            return None
        try:
            stored = json.loads(self._shared.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(stored, dict) or not now < stored.get("until", 0) <= now + self._ttl:
            return None
        return _decoded(stored), stored["until"]

    def _write_shared(self, aggregates: InventoryAggregates, until: float) -> None:
        if self._shared is None:
            return
        temporary = self._shared.with_name(f".{SHARED_FILE}.{os.getpid()}")
        try:
            temporary.write_text(json.dumps({"until": until, **_encoded(aggregates)}))
            os.replace(temporary, self._shared)  # readers see the old file or the new one, whole
        except OSError:
            pass  # the other workers query for themselves


def _encoded(aggregates: InventoryAggregates) -> dict:
    when = lambda value: value.isoformat() if value is not None else None
    return {"certificates": [[g.profile, g.state, g.count, when(g.soonest_expiry)] for g in aggregates.certificates],
            "deployments": [[d.server, d.name, d.directory, when(d.expiry)] for d in aggregates.deployments],
            "crls": {ca: when(next_update) for ca, next_update in aggregates.crl_next_updates.items()}}


def _decoded(stored: dict) -> InventoryAggregates:
    when = lambda value: dt.datetime.fromisoformat(value) if value is not None else None
    return InventoryAggregates(
        [CertificateGroup(profile, state, count, when(soonest))
         for profile, state, count, soonest in stored["certificates"]],
        [DeploymentExpiry(server, name, directory, when(expiry))
         for server, name, directory, expiry in stored["deployments"]],
        {ca: when(next_update) for ca, next_update in stored["crls"].items()})
