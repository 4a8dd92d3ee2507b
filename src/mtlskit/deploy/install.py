"""Atomic installation of a deployment's files (temp file in the same directory + os.replace).

A reader (the web server, a reload) sees either the old file or the new one, never a
half-written one; private keys are created 0600 from the first byte, never chmod-ed later.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Iterable

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mtlskit.errors import BadInput
from mtlskit.fileio import PRIVATE, PUBLIC, remove_quietly, replaceable, write_atomic, write_temp

KEY_MODE = PRIVATE  # 0600
PUBLIC_MODE = PUBLIC  # 0644


@dataclasses.dataclass(frozen=True)
class FileSpec:
    """One file to install: name inside the directory, content, permission bits."""

    name: str
    data: bytes
    mode: int = PUBLIC_MODE


def atomic_write(path: Path, data: bytes, mode: int = PUBLIC_MODE) -> None:
    """Write ``data`` to ``path`` atomically with permission bits ``mode`` (``fileio.write_atomic``).

    Raises:
        BadInput: the directory is missing or not writable.
    """
    try:
        write_atomic(path, data, mode)
    except OSError as exc:
        raise BadInput(f"cannot write {path}: {exc.strerror or exc}") from None


def make_directory(directory: Path) -> list[Path]:
    """Create ``directory`` (0755) and its missing parents.

    Returns:
        the directories created, outermost first (for :func:`remove_created`).

    Raises:
        BadInput: naming the path, when it cannot be created or is not a directory.
    """
    missing = [d for d in (directory, *directory.parents) if not d.exists()][::-1]
    try:
        directory.mkdir(mode=0o755, parents=True, exist_ok=True)
        for created in missing:   # parents get 0777 & ~umask from mkdir: never world-writable
            os.chmod(created, 0o755)
    except OSError as exc:
        raise BadInput(f"cannot create --dir {directory}: {exc.strerror or exc}") from None
    if not directory.is_dir():
        raise BadInput(f"--dir {directory} exists and is not a directory")
    if not os.access(directory, os.W_OK | os.X_OK):
        remove_created(missing)
        raise BadInput(f"cannot write into --dir {directory}: permission denied")
    return missing


def remove_created(created: list[Path]) -> None:
    """Undo :func:`make_directory` after a refusal: remove what it created, if still empty."""
    for directory in reversed(created):
        try:
            directory.rmdir()
        except OSError:
            return


def install(directory: Path, files: Iterable[FileSpec]) -> list[Path]:
    """Create ``directory`` (0755) if needed and install every file atomically, as one unit.

    Every file is first written in full (and flushed) beside its target; only then are they
    renamed into place, in order, one right after the other. A server reloaded by someone
    else during an installation thus sees the old files or the new ones, except during the
    few microseconds between two renames (never for a half-written file, and never for
    long enough to matter: a new key and its certificate are published back to back).
    Callers list the files the configuration refers to before the configuration itself.

    Returns:
        the installed paths, in order.
    """
    try:
        directory.mkdir(mode=0o755, parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"cannot create {directory}: {exc.strerror}") from None
    if not directory.is_dir():
        raise BadInput(f"{directory} exists and is not a directory")
    staged: list[tuple[Path, Path]] = []
    try:
        for spec in files:
            target = directory / spec.name
            staged.append((target, write_temp(replaceable(target), spec.data, spec.mode)))
        for target, temporary in staged:
            os.replace(temporary, replaceable(target))
    except OSError as exc:
        failed = exc.filename or directory
        raise BadInput(f"cannot write {failed}: {exc.strerror or exc}") from None
    finally:
        for _, temporary in staged:
            remove_quietly(temporary)          # those not renamed (after a failure)
    return [target for target, _ in staged]


def check_key_matches(chain_pem: bytes, key_pem: bytes) -> None:
    """Refuse a server key that is not the key of the chain's first certificate.

    A server reloaded with a mismatched pair refuses it (nginx keeps its old
    configuration; Apache's graceful restart exits; HAProxy refuses the commit).

    Raises:
        BadInput: unreadable PEM, or a key that does not match the certificate.
    """
    try:
        leaf = x509.load_pem_x509_certificate(chain_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise BadInput(f"cannot read the server certificate or key: {exc}") from None
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(serialization.Encoding.DER, public) != \
            leaf.public_key().public_bytes(serialization.Encoding.DER, public):
        raise BadInput("the server key does not match the server certificate; nothing was installed")
