"""Safe file writing (atomic replacement, private modes, nothing half-written) and bounded
reading of input files (regular files only, size-limited, never blocking)."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path

PRIVATE = 0o600
PUBLIC = 0o644


def write_atomic(path: Path, data: bytes, mode: int = PUBLIC) -> None:
    """Write `data` to `path` through a temporary file in the same directory and rename.

    The temporary file is created with `mode` already set (0600 for keys), so a secret
    is never readable by others, not even for an instant. A symbolic link is written
    through (its target is replaced, the link stays); anything else that is not a regular
    file (a device such as /dev/null, a FIFO, a directory) is refused, never replaced.

    Raises:
        NotRegularFile: ``path`` exists and is not a regular file (an OSError).
    """
    path = replaceable(Path(path))
    tmp_name = write_temp(path, data, mode)
    try:
        os.replace(tmp_name, path)
    except BaseException:
        remove_quietly(tmp_name)
        raise


class NotRegularFile(OSError):
    """An output path that exists and is not a regular file."""


def replaceable(path: Path) -> Path:
    """The path to replace for ``path``: itself, or the regular file a symlink points to.

    Raises:
        NotRegularFile: it exists and is not (and does not point to) a regular file.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return path
    if not stat.S_ISREG(info.st_mode):
        raise NotRegularFile(errno.EEXIST, "exists and is not a regular file", str(path))
    return Path(os.path.realpath(path)) if os.path.islink(path) else path


def write_temp(path: Path, data: bytes, mode: int = PUBLIC) -> Path:
    """Write `data` to a new temporary file beside `path`, with `mode`, flushed to disk.

    The first half of `write_atomic`: `os.replace(temporary, path)` publishes it (the
    caller removes it instead when it decides not to). Nothing is left behind on failure.
    """
    path = Path(path)
    make_dirs(path.parent)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        remove_quietly(tmp_name)
        raise
    return Path(tmp_name)


def remove_quietly(path: Path | str) -> None:
    """Remove a file that may already be gone."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def write_new(path: Path | str, data: bytes, mode: int = PUBLIC, dir_fd: int | None = None) -> None:
    """Create `path` (which must not exist) with `mode`; fast path for fresh directories.

    With `dir_fd`, `path` is a name inside that open directory (no path lookup per file).
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode, dir_fd=dir_fd)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


PUBLIC_DIR = 0o755
PRIVATE_DIR = 0o700


def make_dirs(path: Path | str, mode: int = PUBLIC_DIR) -> None:
    """Create ``path`` and its missing parents, each with ``mode`` whatever the umask
    (under umask 000, ``mkdir -p`` makes world-writable directories). Directories that
    exist already are left as they are."""
    missing = []
    current = Path(path)
    while not current.is_dir() and current != current.parent:
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, mode)
        except FileExistsError:
            if not directory.is_dir():
                raise
            continue   # made meanwhile by someone else: theirs
        os.chmod(directory, mode)   # mkdir's mode went through the umask


def make_private_dir(path: Path) -> None:
    """``path`` with mode 0700 (made or tightened); missing parents are made 0755."""
    make_dirs(Path(path).parent)
    path.mkdir(exist_ok=True, mode=PRIVATE_DIR)
    os.chmod(path, PRIVATE_DIR)


MAX_INPUT = 4 * 1024 * 1024   # a certificate bundle, CSR, key, CRL excerpt or PKCS#12
MAX_SECRET = 4096             # a passphrase or password file


class InputRefused(ValueError):
    """An input file that is not a readable regular file within its size limit."""


def read_input(path: Path | str, limit: int = MAX_INPUT, private: bool = False) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes, read without blocking.

    The file is opened non-blocking and checked with fstat before anything is read, so a
    FIFO, a device (``/dev/zero``), a socket or a directory is refused at once instead of
    hanging or filling memory. With ``private``, a file that its group or others may read
    or write is refused, as ssh refuses such a private key.

    Raises:
        InputRefused: why, in a few words ("not a regular file").
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise InputRefused(exc.strerror or str(exc)) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InputRefused("not a regular file")
        if private and info.st_mode & 0o077:
            raise InputRefused(f"group or others have access to it (mode {info.st_mode & 0o777:04o})")
        if info.st_size > limit:
            raise InputRefused(f"larger than {limit} bytes")
        chunks, size = [], 0
        while chunk := os.read(fd, limit + 1 - size):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:   # it grew after fstat
                raise InputRefused(f"larger than {limit} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)
