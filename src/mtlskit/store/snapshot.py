"""Whole-database copies of the SQLite inventory, for `mtlskit backup` and `restore`.

``copy_sqlite`` takes an online, consistent copy with SQLite's backup API: it holds one
read transaction on the source for the whole copy, so in WAL mode writers (``serve``,
``revoke``, issuance) go on while it runs and the copy is the database as it was at one
instant; the facts the manifest records (schema revision, counts) are read in that same
transaction. ``replacing_sqlite`` is the other end: it makes sure nothing else has the
database open before a restore puts another file in its place.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sqlite3
from pathlib import Path
from typing import Callable, Iterator

from mtlskit.errors import BadInput

PAGES_PER_STEP = 4096            # 16 MiB of 4 KiB pages between progress reports
Progress = Callable[[int, int], None]   # (pages copied, pages in all)


@dataclasses.dataclass(frozen=True)
class InventoryFacts:
    """What a copy holds, read in the transaction that made it."""

    schema_revision: str | None
    certificates: int
    revoked: int
    audit_events: int

    def as_dict(self) -> dict:
        return {"certificates": self.certificates, "revoked": self.revoked, "audit_events": self.audit_events}


def copy_sqlite(source: str, target: Path, progress: Progress | None = None) -> InventoryFacts:
    """Copy the SQLite database at ``source`` to the new file ``target``, online.

    Raises:
        BadInput: ``source`` is not an SQLite database.
    """
    connection = _connect(source)
    try:
        connection.execute("BEGIN")   # one snapshot for the facts and every step of the copy
        facts = _facts(connection)
        destination = sqlite3.connect(target, isolation_level=None)
        try:
            connection.backup(destination, pages=PAGES_PER_STEP,
                              progress=None if progress is None else _pages(progress))
            destination.execute("PRAGMA journal_mode=DELETE")   # one self-contained file
        finally:
            destination.close()
        connection.execute("COMMIT")
        return facts
    except sqlite3.DatabaseError as exc:
        raise BadInput(f"cannot copy the inventory {source}: {exc}") from None
    finally:
        connection.close()


def sqlite_facts(path: Path) -> InventoryFacts:
    """The facts of a database file (a restored copy, checked against its manifest).

    Raises:
        BadInput: it is not an SQLite database of mtlskit, or it is damaged.
    """
    connection = _connect(str(path))
    try:
        check = connection.execute("PRAGMA quick_check").fetchone()
        if check is None or check[0] != "ok":
            raise BadInput(f"the database in the archive is damaged ({check and check[0]})")
        return _facts(connection)
    except sqlite3.DatabaseError as exc:
        raise BadInput(f"the database in the archive is not usable: {exc}") from None
    finally:
        connection.close()


@contextlib.contextmanager
def replacing_sqlite(path: Path) -> Iterator[None]:
    """Hold the database at ``path`` so that nothing else uses it while it is replaced.

    Leaving WAL mode needs the only connection, so this refuses a database that a
    ``serve`` (or any other process) has open; then an exclusive lock keeps new readers
    out until the new file is in place. The old file's ``-wal`` and ``-shm`` are gone
    afterwards (checkpointed by the switch, or removed), so they cannot be replayed into
    the new file.

    Raises:
        BadInput: another process has the database open.
    """
    if not path.exists():
        _remove_sidecars(path)
        yield
        return
    connection = sqlite3.connect(path, isolation_level=None, timeout=0.2)
    try:
        try:
            mode = connection.execute("PRAGMA journal_mode=DELETE").fetchone()[0]
            connection.execute("BEGIN EXCLUSIVE")
        except sqlite3.DatabaseError as exc:
            # busy or locked: someone has it open; anything else (not a database at
            # all): nothing can be using it as one, and it is only moved aside
            busy = getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
            mode = "locked" if busy else "delete"
        if mode != "delete":
            raise BadInput(f"the database {path} is in use (a running `mtlskit serve` or another command)",
                           hint="stop what uses this home, then restore again")
        _remove_sidecars(path)
        yield
    finally:
        connection.close()


def _remove_sidecars(path: Path) -> None:
    for suffix in ("-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{path}{suffix}")


def _connect(path: str) -> sqlite3.Connection:
    if not Path(path).is_file():
        raise BadInput(f"no inventory database at {path}")
    return sqlite3.connect(path, isolation_level=None, timeout=30)


def _facts(connection: sqlite3.Connection) -> InventoryFacts:
    def count(sql: str) -> int:
        return connection.execute(sql).fetchone()[0]

    revision = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    return InventoryFacts(
        schema_revision=revision[0] if revision else None,
        certificates=count("SELECT count(*) FROM certificates"),
        revoked=count("SELECT count(*) FROM certificates WHERE status = 'revoked'"),
        audit_events=count("SELECT count(*) FROM audit_events"))


def _pages(progress: Progress):
    def report(_status: int, remaining: int, total: int) -> None:
        progress(total - remaining, total)
    return report
