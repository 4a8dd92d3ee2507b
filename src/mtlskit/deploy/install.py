"""Atomic installation of a deployment's files (temp file in the same directory + os.replace).

A reader (the web server, a reload) sees either the old file or the new one, never a
half-written one; private keys are created 0600 from the first byte, never chmod-ed later.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Iterable

from mtlskit.errors import BadInput

KEY_MODE = 0o600
PUBLIC_MODE = 0o644


@dataclasses.dataclass(frozen=True)
class FileSpec:
    """One file to install: name inside the directory, content, permission bits."""

    name: str
    data: bytes
    mode: int = PUBLIC_MODE


def atomic_write(path: Path, data: bytes, mode: int = PUBLIC_MODE) -> None:
    """Write ``data`` to ``path`` atomically with permission bits ``mode``.

    Raises:
        BadInput: the directory is missing or not writable.
    """
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise BadInput(f"cannot write into {path.parent}: {exc.strerror}") from None
    try:
        os.fchmod(fd, mode)            # mkstemp creates 0600; widen only public files
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with _ignore_missing():
            os.unlink(tmp)
        raise


def install(directory: Path, files: Iterable[FileSpec]) -> list[Path]:
    """Create ``directory`` (0755) if needed and install every file atomically.

    Each file is replaced atomically on its own; callers write the files the
    configuration refers to before the configuration itself.

    Returns:
        the installed paths, in order.
    """
    try:
        directory.mkdir(mode=0o755, parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"cannot create {directory}: {exc.strerror}") from None
    if not directory.is_dir():
        raise BadInput(f"{directory} exists and is not a directory")
    written = []
    for spec in files:
        atomic_write(directory / spec.name, spec.data, spec.mode)
        written.append(directory / spec.name)
    return written


class _ignore_missing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, value, tb) -> bool:
        return kind is not None and issubclass(kind, FileNotFoundError)
