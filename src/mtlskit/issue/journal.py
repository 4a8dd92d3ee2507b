"""The batch journal: what a running batch may have written, so a killed one is cleaned up.

Before a batch creates its first staging directory, it writes the list of them (with the
final directory each one becomes) to ``HOME/journal/<id>.journal`` and holds an exclusive
flock(2) on that file for as long as it runs; its forked workers hold it too, and the kernel
drops it when the last of them dies, however it died. A finished batch removes its journal.

:func:`sweep` (run by every command that opens the home) treats each journal whose lock it
can take as the journal of a dead batch, and for each staging directory still on disk:
publishes it when its certificate is in the inventory (the batch recorded it and died before
the rename), and destroys it, key and all, when it is not. So after a ``kill -9`` every
certificate on disk is in the inventory or gone by the next command.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import secrets
import shutil
from pathlib import Path
from typing import Iterable

from cryptography import x509

JOURNAL_DIR = "journal"
SUFFIX = ".journal"
CHAIN_PREFIX = ".mtlskit-chain-"  # the shared chain.pem/ca.pem of a large batch


class Journal:
    """An open, locked journal of one batch; `close()` removes it."""

    def __init__(self, home: Path, entries: Iterable[tuple[str, str]], extra_dirs: Iterable[str] = ()) -> None:
        directory = home / JOURNAL_DIR
        directory.mkdir(mode=0o700, exist_ok=True)
        token = secrets.token_hex(8)
        writing = directory / f".{token}.tmp"
        self.path = directory / f"{token}{SUFFIX}"
        self.fd = os.open(writing, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)  # before the name a sweep looks at exists
        try:
            data = bytearray()
            for staged, final in entries:
                data += os.fsencode(staged) + b"\0" + os.fsencode(final) + b"\0"
            for extra in extra_dirs:
                data += os.fsencode(extra) + b"\0\0"  # no final: a directory to remove
            view = memoryview(bytes(data))
            while view:
                view = view[os.write(self.fd, view):]
            os.rename(writing, self.path)
        except BaseException:
            os.close(self.fd)
            _unlink(writing)
            raise

    def close(self) -> None:
        """The batch is over and every staging directory is published or discarded."""
        _unlink(self.path)
        os.close(self.fd)


def sweep(home: Path, inventory) -> int:
    """Finish or undo the batches that died in `home`; returns the staging directories handled."""
    directory = home / JOURNAL_DIR
    try:
        names = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return 0
    handled = 0
    for name in names:
        if name.endswith(SUFFIX):
            handled += _sweep_one(directory / name, inventory)
        elif name.endswith(".tmp"):
            _drop_unfinished(directory / name)
    return handled


def _sweep_one(path: Path, inventory) -> int:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return 0
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0  # a batch that is still running
        if os.fstat(fd).st_nlink == 0:
            return 0  # finished (or swept) while we waited for the lock
        entries = _read_entries(fd)
        handled = sum(_settle(staged, final, inventory) for staged, final in entries)
        _unlink(path)  # only once everything listed is settled: a killed sweep is redone
        return handled
    finally:
        os.close(fd)


def _drop_unfinished(path: Path) -> None:
    """A journal still being written: its batch had not staged anything yet."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        _unlink(path)
    except BlockingIOError:
        pass
    finally:
        os.close(fd)


def _read_entries(fd: int) -> list[tuple[str, str]]:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    fields = b"".join(chunks).split(b"\0")
    return [(os.fsdecode(fields[i]), os.fsdecode(fields[i + 1])) for i in range(0, len(fields) - 1, 2)]


def _settle(staged: str, final: str, inventory) -> int:
    if not _is_ours(os.path.basename(staged)) or not os.path.lexists(staged):
        return 0
    if final and _is_recorded(staged, inventory):
        try:
            os.rename(staged, final)  # the batch recorded it and died before this rename
        except OSError:
            pass  # the place was taken since: the bundle stays where it is, recorded
        return 1
    if os.path.isdir(staged) and not os.path.islink(staged):
        shutil.rmtree(staged, ignore_errors=True)
    else:
        _unlink(staged)
    return 1


def _is_ours(name: str) -> bool:
    """Only names a batch creates are ever removed (see bundle.staging_name)."""
    return (name.startswith(".") and name.endswith(".partial")) or name.startswith(CHAIN_PREFIX)


def _is_recorded(staged: str, inventory) -> bool:
    try:
        with open(os.path.join(staged, "cert.pem"), "rb") as handle:
            certificate = x509.load_pem_x509_certificate(handle.read(64 * 1024))
    except (OSError, ValueError):
        return False  # not written yet, or cut short: never recorded
    from cryptography.hazmat.primitives.serialization import Encoding

    fingerprint = hashlib.sha256(certificate.public_bytes(Encoding.DER)).hexdigest()
    return inventory.by_fingerprint(fingerprint) is not None


def _unlink(path: Path | str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
