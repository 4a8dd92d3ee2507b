"""Counters of one process in a file that other processes read: the per-worker aggregation.

A slot file holds a table of series keys (text) and one float per key. Its process adds to
its floats in place (a shared mapping: an increment is one store to memory, ~50 ns, and
survives the process being killed); any process reads every file of the directory and sums
them by key. A worker's file is named after its pid and a random suffix, so a replacement
worker starts a new file and the dead one's counts stay counted, once.

The files of workers that died are folded, by the next scrape, into one archive
(``dead-workers.json``: their summed counts and the names of the files folded, so a file
still present after a crash between writing the archive and deleting it is not counted
twice); the directory does not grow with every replaced worker. Scrapes hold a shared lock
on the directory, folding an exclusive one.

Layout: MAGIC (8 bytes), the number of keys (u64), CAPACITY floats (f64), then the keys,
each as a u16 length and UTF-8 bytes, in slot order. A key is written before the count
that makes it visible, so a reader never sees a slot without its key.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import mmap
import os
import secrets
import struct
from pathlib import Path
from typing import Iterator

log = logging.getLogger("mtlskit.metrics")
MAGIC = b"MTLSKM01"
CAPACITY = 4096              # series per process; the labels are bounded far below this
KEYS_AT = 16 + 8 * CAPACITY
SIZE = KEYS_AT + 64 * CAPACITY
SUFFIX = ".slots"
ARCHIVE = "dead-workers.json"
LOCK = ".lock"


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


def read_directory(directory: Path, fold_dead: bool = False) -> dict[str, float]:
    """Every slot file of ``directory`` summed by key, the dead workers' included; with
    ``fold_dead``, the files of processes that no longer exist are folded into the archive."""
    directory = Path(directory)
    with _locked(directory, exclusive=fold_dead):
        archive = _read_archive(directory)
        folded = set(archive["folded"])
        files = {path: _read_file(path) for path in sorted(directory.glob(f"*{SUFFIX}")) if path.name not in folded}
        total = dict(archive["counts"])
        for counts in files.values():
            for key, value in counts.items():
                total[key] = total.get(key, 0.0) + value
        if fold_dead:
            _fold(directory, archive, {path: counts for path, counts in files.items() if not _alive(path)})
    return total


def _fold(directory: Path, archive: dict, dead: dict[Path, dict[str, float]]) -> None:
    leftovers = [directory / name for name in archive["folded"] if (directory / name).exists()]
    if not dead and not leftovers:
        return
    counts = archive["counts"]
    for found in dead.values():
        for key, value in found.items():
            counts[key] = counts.get(key, 0.0) + value
    temporary = directory / f".{ARCHIVE}.{os.getpid()}"
    temporary.write_text(json.dumps({"counts": counts, "folded": [p.name for p in [*leftovers, *dead]]}))
    os.replace(temporary, directory / ARCHIVE)  # counted in the archive from here on, and skipped as files ...
    for path in [*leftovers, *dead]:
        path.unlink(missing_ok=True)  # ... which go now (after a crash before this, at the next fold)


def _read_archive(directory: Path) -> dict:
    try:
        stored = json.loads((directory / ARCHIVE).read_text())
    except FileNotFoundError:
        return {"counts": {}, "folded": []}
    return {"counts": dict(stored["counts"]), "folded": list(stored["folded"])}


def _read_file(path: Path) -> dict[str, float]:
    try:
        with open(path, "rb") as file:
            if os.fstat(file.fileno()).st_size != SIZE:
                return {}  # not one of ours, or still being created
            with mmap.mmap(file.fileno(), SIZE, access=mmap.ACCESS_READ) as mapped:
                return _read(mapped)
    except FileNotFoundError:
        return {}


def _alive(path: Path) -> bool:
    """Whether the process that wrote ``path`` (worker-<pid>-<random>.slots) still exists."""
    try:
        pid = int(path.name.split("-")[1])
    except (IndexError, ValueError):
        return True  # not a worker's file: left alone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def _locked(directory: Path, exclusive: bool) -> Iterator[None]:
    fd = os.open(directory / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)
