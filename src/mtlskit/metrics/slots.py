"""Counters of one process in a file that other processes read: the per-worker aggregation.

A slot file holds a table of series keys (text) and one float per key. Its process adds to
its floats in place (a shared mapping: an increment is one store to memory, ~50 ns, and
survives the process being killed); any process reads every file of the directory and sums
them by key. A worker's file is named after its pid and a random suffix, so a replacement
worker starts a new file and the dead one's counts stay counted, once.

Layout: MAGIC (8 bytes), the number of keys (u64), CAPACITY floats (f64), then the keys,
each as a u16 length and UTF-8 bytes, in slot order. A key is written before the count
that makes it visible, so a reader never sees a slot without its key.
"""

from __future__ import annotations

import logging
import mmap
import os
import secrets
import struct
from pathlib import Path

log = logging.getLogger("mtlskit.metrics")
MAGIC = b"MTLSKM01"
CAPACITY = 4096              # series per process; the labels are bounded far below this
KEYS_AT = 16 + 8 * CAPACITY
SIZE = KEYS_AT + 64 * CAPACITY
SUFFIX = ".slots"


class Slots:
    """The counters of this process: in a file of ``directory``, or in memory when None."""

    def __init__(self, directory: Path | None = None) -> None:
        self.path: Path | None = None
        if directory is None:
            self._map = mmap.mmap(-1, SIZE)
        else:
            self.path = Path(directory) / f"worker-{os.getpid()}-{secrets.token_hex(4)}{SUFFIX}"
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.ftruncate(fd, SIZE)
                self._map = mmap.mmap(fd, SIZE)
            finally:
                os.close(fd)
        self._map[:8] = MAGIC
        self.values = memoryview(self._map)[16:KEYS_AT].cast("d")
        self._index: dict[str, int] = {}
        self._keys_end = KEYS_AT
        self._full = False

    def slot(self, key: str) -> int:
        """The index of ``key`` in :attr:`values`, added when new; -1 when the file is full."""
        index = self._index.get(key)
        if index is not None:
            return index
        encoded = key.encode()
        if len(self._index) >= CAPACITY or self._keys_end + 2 + len(encoded) > SIZE:
            if not self._full:
                log.error("metrics: more than %d series in one process; new series are not counted", CAPACITY)
                self._full = True
            return -1
        index = len(self._index)
        self._map[self._keys_end:self._keys_end + 2 + len(encoded)] = struct.pack("<H", len(encoded)) + encoded
        self._keys_end += 2 + len(encoded)
        struct.pack_into("<Q", self._map, 8, index + 1)  # published after the key is written
        self._index[key] = index
        return index

    def add(self, key: str, amount: float = 1.0) -> None:
        index = self.slot(key)
        if index >= 0:
            self.values[index] += amount

    def read(self) -> dict[str, float]:
        return _read(self._map)


def _read(buffer) -> dict[str, float]:
    if bytes(buffer[:8]) != MAGIC:
        return {}
    count = min(struct.unpack_from("<Q", buffer, 8)[0], CAPACITY)
    values = struct.unpack_from(f"<{count}d", buffer, 16)
    found, at = {}, KEYS_AT
    for value in values:
        (length,) = struct.unpack_from("<H", buffer, at)
        found[bytes(buffer[at + 2:at + 2 + length]).decode()] = value
        at += 2 + length
    return found


def read_directory(directory: Path) -> dict[str, float]:
    """Every slot file of ``directory`` summed by key (the files of dead workers included)."""
    total: dict[str, float] = {}
    for path in sorted(Path(directory).glob(f"*{SUFFIX}")):
        try:
            with open(path, "rb") as file:
                if os.fstat(file.fileno()).st_size != SIZE:
                    continue  # not one of ours, or still being created
                with mmap.mmap(file.fileno(), SIZE, access=mmap.ACCESS_READ) as mapped:
                    found = _read(mapped)
        except FileNotFoundError:
            continue
        for key, value in found.items():
            total[key] = total.get(key, 0.0) + value
    return total
