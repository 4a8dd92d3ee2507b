"""Has another connection committed to the inventory? A check cheap enough for every
OCSP request, so that a revocation committed by any process is answered on the next one.

SQLite in WAL mode keeps a wal-index header at the start of the ``-shm`` file that every
commit rewrites: its ``iChange`` counter and ``mxFrame`` move with each transaction
(https://www.sqlite.org/walformat.html, "The WAL-Index Header"). Reading those 48 bytes
through a read-only memory map costs a fraction of a microsecond, against ~2.4 µs for
``PRAGMA data_version`` on a dedicated connection, which is the fallback when the header
cannot be mapped. The watch holds its own connection open for as long as it lives: the
``-shm`` file is removed when the last connection to the database closes, and a map of a
removed file would never move again.

Other databases (PostgreSQL, with replicas on several hosts) have no such file: their
watch is the change counter (:mod:`mtlskit.store.counter`), moved by every transaction that
changes what `serve` caches. An in-memory SQLite database says "moved" every ``interval``
seconds.
"""

from __future__ import annotations

import mmap
import os
import sqlite3
import time
from typing import Callable

from mtlskit.store.sql import SQLITE

WAL_INDEX_VERSION = 3007000  # iVersion of the wal-index header (walformat.html)
HEADER_BYTES = 48


class ChangeWatch:
    """``moved()`` is True when the database may have changed since the last call."""

    def moved(self) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        pass


class _WalIndexWatch(ChangeWatch):
    def __init__(self, connection: sqlite3.Connection, shm: mmap.mmap) -> None:
        self._connection, self._shm = connection, shm
        self._seen = shm[:HEADER_BYTES]

    def moved(self) -> bool:
        header = self._shm[:HEADER_BYTES]
        if header == self._seen:
            return False
        self._seen = header
        return True

    def close(self) -> None:
        self._shm.close()
        self._connection.close()


class _DataVersionWatch(ChangeWatch):
    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection
        self._cursor = connection.cursor()
        self._seen = self._version()

    def _version(self) -> int:
        return self._cursor.execute("PRAGMA data_version").fetchone()[0]

    def moved(self) -> bool:
        version = self._version()
        if version == self._seen:
            return False
        self._seen = version
        return True

    def close(self) -> None:
        self._connection.close()


class _IntervalWatch(ChangeWatch):
    def __init__(self, interval: float, monotonic: Callable[[], float]) -> None:
        self._interval, self._monotonic = interval, monotonic
        self._next = monotonic() + interval

    def moved(self) -> bool:
        now = self._monotonic()
        if now < self._next:
            return False
        self._next = now + self._interval
        return True


def change_watch(database, interval: float = 5.0,
                 monotonic: Callable[[], float] = time.monotonic) -> ChangeWatch:
    """The cheapest exact watch ``database`` (a :class:`mtlskit.store.sql.Database`) offers:
    SQLite's WAL index, else the change counter; an in-memory SQLite database gets one
    that moves every ``interval``."""
    if database.dialect != SQLITE:
        from mtlskit.store.counter import CounterWatch

        return CounterWatch(database.url)
    path = database.path
    if not path or path == ":memory:":
        return _IntervalWatch(interval, monotonic)
    connection = sqlite3.connect(path, check_same_thread=False)  # reads only; holds the -shm file
    connection.execute("SELECT count(*) FROM sqlite_master").fetchone()  # opens the WAL index
    shm = _map_wal_index(path + "-shm")
    return _WalIndexWatch(connection, shm) if shm is not None else _DataVersionWatch(connection)


def _map_wal_index(path: str) -> mmap.mmap | None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        shm = mmap.mmap(fd, HEADER_BYTES, prot=mmap.PROT_READ)
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)
    if int.from_bytes(shm[:4], "little") != WAL_INDEX_VERSION and int.from_bytes(shm[:4], "big") != WAL_INDEX_VERSION:
        shm.close()
        return None
    return shm
