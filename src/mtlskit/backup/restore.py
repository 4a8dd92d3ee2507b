"""`mtlskit restore FILE`: put a backup back into a CA home.

1. The whole archive is checked first (manifest, every member's size and SHA-256, the
   names, nothing extra, nothing missing); nothing is written before that passes.
2. The members are written into a private staging directory beside the home, hashed
   again as they are written (the file may have changed since step 1); the database
   copy must pass SQLite's quick_check and hold what the manifest says it holds.
3. The staging directory becomes the home (a new or empty home), or, with ``force``, what
   the home held is moved into ``HOME/replaced-<time>/`` (nothing is deleted) and the
   staged files take its place. A database another process has open is never replaced;
   the replaced database's ``-wal``/``-shm`` are folded in or removed, so SQLite cannot
   replay them into the restored file.

Modes come from the kind of each file (keys 0600, directories 0700), never from the archive.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator

from mtlskit import __version__
from mtlskit.backup.archive import read_archive, sha256_stream
from mtlskit.backup.manifest import CONFIG_MEMBER, PRIVATE_DIR, SQLITE_MEMBER, Manifest, Member, mode_of
from mtlskit.errors import BadInput
from mtlskit.fileio import make_dirs

# what a replacing restore moves aside (beside the members it restores)
DERIVED = ("crl", "ocsp", "tls")
Progress = Callable[[str, int, int], None]


@dataclasses.dataclass(frozen=True)
class RestoreResult:
    home: Path
    manifest: Manifest
    replaced_into: Path | None     # where the previous contents went (``force``)


def restore_backup(archive: Path, home: Path, now: dt.datetime, force: bool = False,
                   database_url: str | None = None, progress: Progress | None = None,
                   expect_sha256: str | None = None) -> RestoreResult:
    """Restore the archive at ``archive`` into ``home``.

    Raises:
        BadInput: the archive is not intact, the home is not empty (without ``force``) or
            is not a directory, or its database is in use.
    """
    home = Path(os.path.abspath(home))
    with _open_archive(archive) as handle:
        if expect_sha256 is not None:
            _check_whole(handle, expect_sha256)
        manifest = read_archive(handle)
        _check_schema(manifest)
        if manifest.dialect == "sqlite" and database_url and not database_url.startswith("sqlite"):
            raise BadInput("this backup holds a SQLite inventory; --database-url is for PostgreSQL backups",
                           hint="restore it without --database-url (it goes to HOME/inventory.db)")
        replacing = _check_home(home, force)
        make_dirs(home.parent)   # a fresh machine's path: its missing parents (0755)
        staging = Path(tempfile.mkdtemp(dir=home.parent, prefix=f".{home.name}.restore-"))
        try:
            _stage(handle, staging, manifest, progress)
            _check_database(staging, manifest, database_url, force)
            replaced = _replace(home, staging, now) if replacing else _install(home, staging)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return RestoreResult(home, manifest, replaced)


def check_backup(archive: Path, expect_sha256: str | None = None) -> Manifest:
    """Everything ``restore_backup`` checks, writing nothing to any home: the archive
    against its manifest, the schema revision, and the database copy (SQLite: copied to a
    private temporary directory for quick_check and the counts; PostgreSQL: pg_restore
    --list reads the dump).

    Raises:
        BadInput: the first thing found wrong.
    """
    with _open_archive(archive) as handle:
        if expect_sha256 is not None:
            _check_whole(handle, expect_sha256)
        manifest = read_archive(handle)
        _check_schema(manifest)
        with tempfile.TemporaryDirectory(prefix="mtlskit-check-") as scratch:
            staging = Path(scratch)
            _stage(handle, staging, manifest, None)
            if manifest.dialect == "sqlite":
                _check_database(staging, manifest, None, False)
            else:
                from mtlskit.store.pgdump import list_dump

                list_dump(staging / manifest.database_member)
    return manifest


@contextlib.contextmanager
def _open_archive(path: Path) -> Iterator[BinaryIO]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise BadInput(f"cannot read {path}: not a regular file")
        yield handle


def _check_whole(handle: BinaryIO, expected: str) -> None:
    """The archive is the one whose SHA-256 `backup` printed (kept apart from it): the
    manifest's own hashes only show damage, this also shows a consistent forgery."""
    expected = expected.strip().lower()
    if len(expected) != 64 or any(c not in "0123456789abcdef" for c in expected):
        raise BadInput("--expect-sha256 wants 64 hex digits")
    handle.seek(0)
    if sha256_stream(handle)[1] != expected:
        raise BadInput("the archive's SHA-256 is not the one expected (--expect-sha256): refused")


def _check_schema(manifest: Manifest) -> None:
    import mtlskit.store

    # the migrations' file names, without importing store.db (SQLAlchemy: a slow start)
    versions = Path(mtlskit.store.__file__).parent / "migrations" / "versions"
    known = {p.stem for p in versions.glob("[0-9]*.py")}
    if manifest.schema_revision not in known:
        raise BadInput(f"the backup's schema revision {manifest.schema_revision[:40]!r} is unknown to this "
                       f"version ({__version__}); the backup was written by version {manifest.mtlskit_version[:20]}",
                       hint="restore it with that version or a newer one")


def _check_home(home: Path, force: bool) -> bool:
    """Whether restoring replaces what the home holds (it exists and is not empty)."""
    try:
        info = os.lstat(home)
    except FileNotFoundError:
        return False
    if not stat.S_ISDIR(info.st_mode):
        raise BadInput(f"{home} exists and is not a directory"
                       + (" (a symbolic link: give the real path)" if stat.S_ISLNK(info.st_mode) else ""))
    if not any(os.scandir(home)):
        return False
    if not force:
        raise BadInput(f"{home} is not empty; refusing to restore over it",
                       hint="restore into a new --home, or add --force (what it holds is moved into "
                            "HOME/replaced-<time>/)")
    return True


def _stage(handle: BinaryIO, staging: Path, manifest: Manifest, progress: Progress | None) -> None:
    os.mkdir(staging / "ca", PRIVATE_DIR)
    os.chmod(staging / "ca", PRIVATE_DIR)     # whatever the umask
    total = sum(m.size for m in manifest.members)
    done = [0]

    def write(member: Member, chunks: Iterable[bytes]) -> str:
        digest = hashlib.sha256()
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(staging / member.name, flags, mode_of(member.name))
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), mode_of(member.name))
            for chunk in chunks:
                digest.update(chunk)
                out.write(chunk)
                done[0] += len(chunk)
                if progress is not None:
                    progress("files", done[0], total)
            out.flush()
            os.fsync(out.fileno())
        return digest.hexdigest()

    read_archive(handle, write)


def _check_database(staging: Path, manifest: Manifest, database_url: str | None, replace: bool) -> None:
    """SQLite: the staged copy holds what the manifest says. PostgreSQL: restore the dump
    into its database (empty unless ``replace``), then the same comparison."""
    if manifest.dialect == "sqlite":
        from mtlskit.store.snapshot import sqlite_facts

        facts = sqlite_facts(staging / SQLITE_MEMBER)
        if _recorded_database_url(staging / CONFIG_MEMBER) is not None:
            _set_database_url(staging / CONFIG_MEMBER, None)   # the copy is HOME/inventory.db now
    else:
        facts = _restore_postgresql(staging, manifest, database_url, replace)
    if facts.schema_revision != manifest.schema_revision or facts.as_dict() != manifest.inventory:
        raise BadInput("the database in the archive does not hold what its manifest says")


def _restore_postgresql(staging: Path, manifest: Manifest, database_url: str | None, replace: bool):
    from mtlskit.store.pgdump import restore_postgresql
    from mtlskit.store.sql import POSTGRESQL, dialect_of

    config = staging / CONFIG_MEMBER
    recorded = _recorded_database_url(config)
    url = database_url or recorded
    if url is None or dialect_of(url) != POSTGRESQL:
        raise BadInput("this backup holds a PostgreSQL database: say where to restore it",
                       hint="add --database-url postgresql://USER@HOST:PORT/DB (an empty database)")
    dump = staging / manifest.database_member
    facts = restore_postgresql(dump, url, replace)
    os.unlink(dump)    # in the database now; the home keeps no copy
    if database_url is not None and database_url != recorded:
        _set_database_url(config, database_url)
    return facts


def _recorded_database_url(config: Path) -> str | None:
    import tomllib

    if not config.exists():
        return None
    try:
        value = tomllib.loads(config.read_text()).get("database_url")
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        raise BadInput("the archive's mtlskit.toml is not valid TOML") from None
    return value if isinstance(value, str) else None


def _set_database_url(config: Path, url: str | None) -> None:
    """The restored mtlskit.toml names the database the dump went into (None: the
    default, HOME/inventory.db, where an SQLite copy is restored)."""
    import json

    lines = config.read_text().splitlines() if config.exists() else []
    kept = [line for line in lines if not line.lstrip().startswith("database_url")]
    first_table = next((i for i, line in enumerate(kept) if line.lstrip().startswith("[")), len(kept))
    if url is not None:
        kept.insert(first_table, f"database_url = {json.dumps(url)}")
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("\n".join(kept) + "\n")


def _install(home: Path, staging: Path) -> None:
    """A new or empty home: the staging directory becomes it (one rename)."""
    os.chmod(staging, PRIVATE_DIR)
    try:
        os.rename(staging, home)    # onto a missing or empty directory
    except OSError as exc:   # it became non-empty meanwhile, or is a mount point
        raise BadInput(f"cannot put the restored home at {home}: {exc.strerror}; nothing was restored there",
                       hint="restore into a new directory (not a mount point)") from None
    _fsync_dir(home.parent)


def _replace(home: Path, staging: Path, now: dt.datetime) -> Path:
    """Move what ``home`` holds of a CA home aside, then the staged files in."""
    from mtlskit.store.snapshot import replacing_sqlite

    with replacing_sqlite(home / SQLITE_MEMBER):
        aside = Path(tempfile.mkdtemp(dir=home, prefix=f"replaced-{now:%Y%m%dT%H%M%SZ}-"))
        for name in ("ca", "mtlskit.toml", SQLITE_MEMBER, *DERIVED):
            if os.path.lexists(home / name):
                os.rename(home / name, aside / name)
        for entry in os.scandir(staging):
            os.rename(entry.path, home / entry.name)
    os.chmod(home, PRIVATE_DIR)
    _fsync_dir(home)
    return aside


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
