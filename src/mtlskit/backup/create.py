"""`mtlskit backup FILE`: an online, consistent copy of a CA home in one archive.

What goes in: the inventory (SQLite: the backup API's copy; PostgreSQL: ``pg_dump``), the
CA certificates and the CA key files as they are (encrypted at rest), and ``mtlskit.toml``.
A key that is not a file of the home is not in it, and the manifest says so per CA:
``in-token`` (a PKCS#11 token; the archive holds the home's reference to it,
``ca/<name>.pkcs11.json``, never a PIN) or ``not-in-archive`` (kept off the machine). What stays out: exports and caches that the home rebuilds (``crl/``,
``ocsp/`` responders, ``tls/``), the REST API token, the agent's state.

The archive is written 0600 to a temporary file beside FILE, flushed, then linked into
place: FILE is never half-written, and an existing FILE is replaced only with ``force``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import os
import stat
import tempfile
from pathlib import Path
from typing import Callable

from mtlskit import __version__
from mtlskit.backup.archive import sha256_file, write_archive
from mtlskit.backup.manifest import (CONFIG_MEMBER, MAX_SMALL_MEMBER, POSTGRESQL_MEMBER, SQLITE_MEMBER, Manifest,
                                     Member)
from mtlskit.ca.home import CaFiles
from mtlskit.config import Settings
from mtlskit.errors import BadInput
from mtlskit.fileio import PRIVATE

# (stage, done, total): "database" in pages or bytes, "archive" in bytes
Progress = Callable[[str, int, int], None]


@dataclasses.dataclass(frozen=True)
class BackupResult:
    path: Path
    manifest: Manifest
    size: int
    sha256: str          # of the whole archive, to keep beside it


def take_backup(settings: Settings, target: Path, now: dt.datetime, force: bool = False,
                progress: Progress | None = None) -> BackupResult:
    """Write the backup of ``settings.home`` to ``target``.

    Raises:
        NotFound: there is no CA in the home.
        BadInput: ``target`` exists (without ``force``) or is not a regular file, its
            directory is missing, or a CA file cannot be read.
    """
    target = Path(os.path.abspath(target))
    check_target(target, force)
    ca_files = CaFiles(settings.ca_dir)
    ca_files.require()
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".mtlskit-backup-") as work:
        # the database first: CA files are only ever added (rotate), so those read after
        # it include every issuer the copy names
        dialect, facts, database = _dump_database(settings, Path(work), progress)
        sources, keys = _home_files(settings, ca_files)
        sources[database.name] = database
        members = tuple(_member(name, source) for name, source in sorted(sources.items()))
        manifest = Manifest(mtlskit_version=__version__, schema_revision=facts.schema_revision or "",
                            created_at=now.strftime("%Y-%m-%dT%H:%M:%SZ"), dialect=dialect,
                            inventory=facts.as_dict(), keys=keys, members=members)
        archive = Path(work) / "archive.tar"
        size, digest = _write(archive, manifest, sources, int(now.timestamp()), progress)
        _place(archive, target, force)
    return BackupResult(target, manifest, size, digest)


def _home_files(settings: Settings, ca_files: CaFiles) -> tuple[dict[str, Path | bytes], dict[str, str]]:
    """The CA files and the config, read now; which CA keys are in them."""
    sources: dict[str, Path | bytes] = {}
    keys = {}
    for name in ca_files.registry().names:
        sources[f"ca/{name}.pem"] = _read_home_file(ca_files.certificate_path(name))
        key = _read_home_file(ca_files.key_path(name), missing_ok=True)
        reference = _read_home_file(ca_files.ca_dir / f"{name}.pkcs11.json", missing_ok=True)
        if key is not None:
            sources[f"ca/{name}.key.pem"] = key
        if reference is not None:    # the key is in a PKCS#11 token: where, not the key
            sources[f"ca/{name}.pkcs11.json"] = reference
        keys[name] = "in-archive" if key is not None else "in-token" if reference is not None else "not-in-archive"
    config = _read_home_file(settings.config_file, missing_ok=True)
    if config is not None:
        sources[CONFIG_MEMBER] = config
    return sources, keys


def check_target(target: Path, force: bool) -> None:
    """Refuse what FILE must not be: an existing file (without ``force``), anything that is
    not a regular file or a symbolic link, or a path whose directory is missing."""
    try:
        info = os.lstat(target)
    except FileNotFoundError:
        info = None
    if info is not None and not (stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode)):
        raise BadInput(f"{target} exists and is not a regular file", hint="give the path of a new file")
    if info is not None and not force:
        what = "a symbolic link" if stat.S_ISLNK(info.st_mode) else "a file"
        raise BadInput(f"{target} exists ({what}); refusing to replace it",
                       hint="give a new path, or --force to replace it (a link is replaced, not followed)")
    if not target.parent.is_dir():
        raise BadInput(f"the directory of {target} does not exist")
    if not os.access(target.parent, os.W_OK | os.X_OK):
        raise BadInput(f"cannot write in {target.parent}: permission denied")


def _read_home_file(path: Path, missing_ok: bool = False) -> bytes | None:
    """A small regular file of the home, not followed if it is a link."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        if missing_ok:
            return None
        raise BadInput(f"cannot read {path}: it is missing") from None
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_SMALL_MEMBER:
            raise BadInput(f"{path} is not a regular file of at most {MAX_SMALL_MEMBER} bytes")
        return handle.read(MAX_SMALL_MEMBER + 1)


def _dump_database(settings: Settings, work: Path, progress: Progress | None):
    from mtlskit.store.sql import SQLITE, dialect_of, sqlite_path

    dialect = dialect_of(settings.database_url)
    if dialect == SQLITE:
        from mtlskit.store.snapshot import copy_sqlite

        copy = work / SQLITE_MEMBER
        report = None if progress is None else (lambda done, total: progress("database", done, total))
        return dialect, copy_sqlite(sqlite_path(settings.database_url), copy, report), copy
    from mtlskit.store.pgdump import dump_postgresql

    copy = work / POSTGRESQL_MEMBER
    if progress is not None:
        progress("database", 0, 1)   # pg_dump reports nothing on the way
    facts = dump_postgresql(settings.database_url, copy)
    if progress is not None:
        progress("database", 1, 1)
    return dialect, facts, copy


def _member(name: str, source: Path | bytes) -> Member:
    if isinstance(source, bytes):
        return Member(name, len(source), hashlib.sha256(source).hexdigest())
    size, digest = sha256_file(source)
    return Member(name, size, digest)


def _write(archive: Path, manifest: Manifest, sources, mtime: int, progress: Progress | None) -> tuple[int, str]:
    """Write the archive (0600 from its creation), flushed to disk; its size and SHA-256,
    hashed as it is written."""
    fd = os.open(archive, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE)
    os.fchmod(fd, PRIVATE)
    total = sum(m.size for m in manifest.members)
    with os.fdopen(fd, "wb") as out:
        hashing = _HashingWriter(out, None if progress is None else lambda done: progress("archive", done, total))
        write_archive(hashing, manifest, sources, mtime)
        out.flush()
        os.fsync(out.fileno())
    return hashing.size, hashing.digest.hexdigest()


class _HashingWriter:
    """A file to write that hashes what goes through it (tarfile needs ``write`` and ``tell``)."""

    def __init__(self, out, report) -> None:
        self.out, self.report, self.digest, self.size = out, report, hashlib.sha256(), 0

    def write(self, data) -> int:
        self.digest.update(data)
        self.size += len(data)
        if self.report is not None:
            self.report(self.size)
        return self.out.write(data)

    def tell(self) -> int:
        return self.size


def _place(archive: Path, target: Path, force: bool) -> None:
    """Put the finished archive at ``target``: a new name (link, which fails if something
    appeared there meanwhile) or, with ``force``, in place of the file or link there."""
    if force:
        os.replace(archive, target)
    else:
        try:
            os.link(archive, target)
        except FileExistsError:
            raise BadInput(f"{target} appeared while the backup was written; refusing to replace it") from None
        os.unlink(archive)
    directory = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
