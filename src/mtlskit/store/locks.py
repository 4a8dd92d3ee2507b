"""Named locks that hold across processes and, on PostgreSQL, across hosts.

On PostgreSQL a lock is an advisory lock of the database (``pg_advisory_xact_lock``): held
by a transaction until it ends, so every replica of ``mtlskit serve`` on any host waits
for it. On SQLite, whose database lives on one host, the callers keep their ``flock`` files.
"""

from __future__ import annotations

import hashlib

MIGRATE = "mtlskit:migrate"


def lock_key(name: str) -> int:
    """The signed 64-bit key of a named advisory lock (stable across processes and versions)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def advisory_xact_lock(tx, name: str) -> None:
    """Inside the transaction ``tx`` (a store.sql Tx on PostgreSQL): wait for the lock
    ``name``; it is released when the transaction commits or rolls back."""
    tx.execute("SELECT pg_advisory_xact_lock(?)", (lock_key(name),))
