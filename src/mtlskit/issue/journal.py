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
import os
import shutil
from pathlib import Path
from typing import Iterable


JOURNAL_DIR = "journal"
SUFFIX = ".journal"
CHAIN_PREFIX = ".mtlskit-chain-"  # the shared chain.pem/ca.pem of a large batch


class Journal:
    """An open, locked journal of one batch; `close()` removes it."""

    def __init__(self, home: Path, entries: Iterable[tuple[str, str]], extra_dirs: Iterable[str] = ()) -> None:
        import secrets  # here: has_journals runs in every command; hmac loads OpenSSL's libcrypto

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


def has_journals(home: Path) -> bool:
    """Cheap: is there anything for :func:`sweep` to look at (without opening the inventory)?"""
    try:
        with os.scandir(home / JOURNAL_DIR) as entries:
            return next(entries, None) is not None
    except (FileNotFoundError, NotADirectoryError):
        return False


def sweep(home: Path, inventory, at) -> tuple[int, int]:
    """Finish or undo the batches that died in `home`.

    Returns:
        (bundles published, bundles destroyed); each journal settled is an audit event.
    """
    directory = home / JOURNAL_DIR
    try:
        names = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return 0, 0
    published = destroyed = 0
    for name in names:
        if name.endswith(SUFFIX):
            done, undone = _sweep_one(directory / name, inventory, at)
            published, destroyed = published + done, destroyed + undone
        elif name.endswith(".tmp"):
            _drop_unfinished(directory / name)
    return published, destroyed


def _sweep_one(path: Path, inventory, at) -> tuple[int, int]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return 0, 0
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0, 0  # a batch that is still running
        if os.fstat(fd).st_nlink == 0:
            return 0, 0  # finished (or swept) while we waited for the lock
        left = [(staged, final) for staged, final in _read_entries(fd)
                if _is_ours(os.path.basename(staged)) and os.path.lexists(staged)]
        fingerprints = {staged: _fingerprint(staged) for staged, final in left if final}
        recorded = inventory.recorded_fingerprints([f for f in fingerprints.values() if f], current=True)
        published = sum(_publish(staged, final) for staged, final in left
                        if fingerprints.get(staged) in recorded)
        for staged, final in left:
            if fingerprints.get(staged) not in recorded:
                _destroy(staged)
        destroyed = sum(1 for staged, final in left if final) - published
        if published or destroyed:
            inventory.record_event("batch-swept", at, journal=path.name,
                                   published=published, destroyed=destroyed)
        _unlink(path)  # only once everything listed is settled: a killed sweep is redone
        return published, destroyed
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


def _publish(staged: str, final: str) -> bool:
    """Recorded, killed before its rename: put it where the batch would have. A renewal's
    staged successor (``final`` holds the set it replaces) is swapped in, and the old set,
    kept there as *.prev, removed."""
    try:
        os.rename(staged, final)
    except OSError:
        if not _swap_renewed(staged, final):
            pass  # the place was taken since: the bundle stays where it is, recorded
    return True


def _swap_renewed(staged: str, final: str) -> bool:
    from mtlskit.lifecycle.swap_dirs import exchange

    if not (os.path.isdir(final) and not os.path.islink(final)
            and os.path.isfile(os.path.join(staged, "cert.pem.prev"))):
        return False
    try:
        exchange(staged, final)
    except OSError:
        return False
    shutil.rmtree(staged, ignore_errors=True)
    return True


def _destroy(staged: str) -> None:
    if os.path.isdir(staged) and not os.path.islink(staged):
        shutil.rmtree(staged, ignore_errors=True)
    else:
        _unlink(staged)


def _is_ours(name: str) -> bool:
    """Only names a batch creates are ever removed (see bundle.staging_name)."""
    return (name.startswith(".") and name.endswith(".partial")) or name.startswith(CHAIN_PREFIX)


def _fingerprint(staged: str) -> str | None:
    """SHA-256 of the staged certificate; None when cert.pem is missing or cut short."""
    import hashlib  # here, as cryptography: every command checks for journals (has_journals)

    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    try:
        with open(os.path.join(staged, "cert.pem"), "rb") as handle:
            certificate = x509.load_pem_x509_certificate(handle.read(64 * 1024))
    except (OSError, ValueError):
        return None
    return hashlib.sha256(certificate.public_bytes(Encoding.DER)).hexdigest()


def _unlink(path: Path | str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
