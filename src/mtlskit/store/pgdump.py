"""Whole-database copies of a PostgreSQL inventory: ``pg_dump`` and ``pg_restore``.

The dump is consistent with the facts the manifest records: one REPEATABLE READ
transaction reads them and exports its snapshot, and ``pg_dump --snapshot`` dumps that
same snapshot while the transaction stays open; writers are never blocked.

The password of the URL goes to the children in a private passfile (``PGPASSFILE``, 0600,
removed afterwards), never in their argv or environment; the children get no other
variable of ours (no ``MTLSKIT_*``, no ``PG*`` of the caller).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

from mtlskit.errors import BadInput
from mtlskit.store.snapshot import InventoryFacts
from mtlskit.store.sql import Database, redact

FACTS_SQL = (
    "SELECT (SELECT version_num FROM alembic_version),"
    " (SELECT count(*) FROM certificates),"
    " (SELECT count(*) FROM certificates WHERE status = 'revoked'),"
    " (SELECT count(*) FROM audit_events)")
TIMEOUT_SECONDS = 3600


def dump_postgresql(url: str, target: Path) -> InventoryFacts:
    """Dump the database at ``url`` to ``target`` (pg_dump's custom format).

    Raises:
        BadInput: pg_dump is missing or fails (its first line of stderr, password-free).
    """
    database = Database.open(url)
    with database.read() as tx:       # REPEATABLE READ: the facts and the dump, one snapshot
        snapshot = tx.scalar("SELECT pg_export_snapshot()")
        facts = _facts(tx.one(FACTS_SQL))
        _run(url, [_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges",
                   f"--snapshot={snapshot}", f"--file={target}"], "pg_dump")
    database.close()
    return facts


def restore_postgresql(dump: Path, url: str, replace: bool = False) -> InventoryFacts:
    """Restore ``dump`` into the database at ``url`` (empty, or emptied with ``replace``),
    in one transaction; the facts of what it then holds.

    Raises:
        BadInput: the database holds tables (without ``replace``), the dump is not one
            pg_restore reads, or pg_restore fails.
    """
    list_dump(dump)
    database = Database.open(url)
    with database.read() as tx:
        tables = tx.scalar("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
        others = tx.scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                           " AND pid <> pg_backend_pid()")
    if tables and not replace:
        raise BadInput(f"the database {redact(url)} is not empty ({tables} tables)",
                       hint="restore into a new, empty database, or add --force to replace what it holds")
    if tables and others:
        raise BadInput(f"the database {redact(url)} is in use ({others} other connections: a running "
                       "`mtlskit serve` or another command)", hint="stop what uses it, then restore again")
    _run(url, [_tool("pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction",
               *(["--clean", "--if-exists"] if tables else []), str(dump)], "pg_restore")
    with database.read() as tx:
        facts = _facts(tx.one(FACTS_SQL))
    database.close()
    return facts


def list_dump(dump: Path) -> None:
    """Make sure pg_restore reads ``dump`` (its table of contents), touching no database.

    Raises:
        BadInput: it does not.
    """
    _run("", [_tool("pg_restore"), "--list", str(dump)], "pg_restore", connect=False)


def _facts(row: tuple) -> InventoryFacts:
    return InventoryFacts(schema_revision=row[0], certificates=row[1], revoked=row[2], audit_events=row[3])


def _tool(name: str) -> str:
    """``name`` on PATH, else in Debian's server directory (the newest version)."""
    found = shutil.which(name) or max(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), default=None)
    if found is None:
        raise BadInput(f"{name} is not installed", hint="install PostgreSQL's client programs (postgresql-client)")
    return found


def _run(url: str, argv: list[str], what: str, connect: bool = True) -> None:
    with _connection_env(url if connect else None) as (conninfo, env):
        command = [*argv, f"--dbname={conninfo}"] if connect else argv
        try:
            done = subprocess.run(command, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            raise BadInput(f"{what} did not finish within {TIMEOUT_SECONDS} s") from None
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        first = redact(lines[0])[:300] if lines else f"exit status {done.returncode}"
        raise BadInput(f"{what} failed: {first}")


@contextlib.contextmanager
def _connection_env(url: str | None) -> Iterator[tuple[str, dict]]:
    """The conninfo without the password, and the children's environment (its passfile)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C", "LC_ALL": "C", "PGTZ": "UTC"}
    if url is None:
        yield "", env
        return
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict("postgresql:" + url.split(":", 1)[1])
    password = params.pop("password", None)
    conninfo = make_conninfo(**params)
    if password is None:
        yield conninfo, env
        return
    with tempfile.TemporaryDirectory(prefix="mtlskit-pgpass-") as directory:
        passfile = Path(directory) / "pgpass"
        fd = os.open(passfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(f"*:*:*:*:{_escape(str(password))}\n")
        yield conninfo, dict(env, PGPASSFILE=str(passfile))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")
