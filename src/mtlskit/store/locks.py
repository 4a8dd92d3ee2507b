"""Named locks that hold across processes and, on PostgreSQL, across hosts.

On PostgreSQL a lock is an advisory lock of the database (``pg_advisory_xact_lock``), held
by a transaction until it ends: every replica of ``mtlskit serve``, on any host, waits
for it, and a replica that dies (even ``kill -9``) releases it with its connection. On
SQLite, whose database lives on one host, it is ``flock`` on a file next to what the lock
protects, as before.

    with cluster_lock(inventory.db, "mtlskit:responders", home / "ocsp" / ".lock"):
        ...   # check, renew, record: one process at a time
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
from pathlib import Path
from typing import Iterator

MIGRATE = "mtlskit:migrate"
RESPONDERS = "mtlskit:responders"
SERVE_TLS = "mtlskit:serve-tls"
CRL = "mtlskit:crl"


def lock_key(name: str) -> int:
    """The signed 64-bit key of a named advisory lock (stable across processes and versions)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def advisory_xact_lock(tx, name: str) -> None:
    """Inside the transaction ``tx`` (a store.sql Tx): on PostgreSQL, wait for the lock
    ``name``, released when the transaction ends. On SQLite nothing: its write
    transaction (BEGIN IMMEDIATE) already excludes every other writer."""
    if tx.dialect == "postgresql":
        tx.execute("SELECT pg_advisory_xact_lock(?)", (lock_key(name),))


@contextlib.contextmanager
def cluster_lock(database, name: str, lock_file: Path) -> Iterator[None]:
    """Hold the lock ``name`` for the block: a database lock on PostgreSQL (held by a
    transaction of this thread's connection; writes of the block on the same connection
    commit with it), ``flock(lock_file)`` on SQLite."""
    if database.dialect == "postgresql":
        with database.transaction() as tx:
            advisory_xact_lock(tx, name)
            yield
        return
    with open(lock_file, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
