"""Safe file writing: atomic replacement, private modes, nothing half-written."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

PRIVATE = 0o600
PUBLIC = 0o644


def write_atomic(path: Path, data: bytes, mode: int = PUBLIC) -> None:
    """Write `data` to `path` through a temporary file in the same directory and rename.

    The temporary file is created with `mode` already set (0600 for keys), so a secret
    is never readable by others, not even for an instant.
    """
    path = Path(path)
    tmp_name = write_temp(path, data, mode)
    try:
        os.replace(tmp_name, path)
    except BaseException:
        remove_quietly(tmp_name)
        raise


def write_temp(path: Path, data: bytes, mode: int = PUBLIC) -> Path:
    """Write `data` to a new temporary file beside `path`, with `mode`, flushed to disk.

    The first half of `write_atomic`: `os.replace(temporary, path)` publishes it (the
    caller removes it instead when it decides not to). Nothing is left behind on failure.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
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


def make_private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
