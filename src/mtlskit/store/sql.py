"""The inventory's database through the plain DB-API: sqlite3, or psycopg 3 for PostgreSQL.

Every query of mtlskit is SQL text in a ``store/`` module, written once for both databases:
``?`` placeholders (turned into psycopg's ``%s``), standard SQL otherwise (``ON CONFLICT``,
``RETURNING`` and window functions exist in both). SQLAlchemy is not imported here: it
costs a CLI process about 130-170 ms of start-up, more than a whole command may take; it
is imported only to run Alembic migrations (:mod:`mtlskit.store.db`).

Datetimes: pass aware datetimes (UTC). SQLite stores them as the text SQLAlchemy wrote
before this module existed (``YYYY-MM-DD HH:MM:SS.ffffff``, UTC, no offset), so stored
values compare as text in the same order as in time; read them back with :func:`utc`.

A :class:`Database` keeps one connection per thread, opened on first use, and a new one
in a forked child (a connection is never used on both sides of a fork).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sqlite3
import threading
from typing import Any, Iterable, Iterator, Sequence

from mtlskit.errors import BadInput

SQLITE = "sqlite"
POSTGRESQL = "postgresql"
BUSY_TIMEOUT_SECONDS = 30
_UTC = dt.timezone.utc


def sqlite_datetime(value: dt.datetime) -> str:
    """An aware (or naive UTC) datetime as SQLite stores it: UTC text, microseconds always."""
    if value.tzinfo is not None:
        if value.utcoffset():
            value = value.astimezone(_UTC)
        value = value.replace(tzinfo=None)
    return value.isoformat(" ", "microseconds")


sqlite3.register_adapter(dt.datetime, sqlite_datetime)


def utc(value: Any) -> dt.datetime | None:
    """A stored datetime (SQLite's text, or PostgreSQL's datetime) as an aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=_UTC)
    return value if not value.utcoffset() else value.astimezone(_UTC)


def dialect_of(url: str) -> str:
    """``sqlite`` or ``postgresql`` from a database URL (SQLAlchemy's driver suffixes allowed).

    Raises:
        BadInput: any other scheme.
    """
    scheme = url.split(":", 1)[0].split("+", 1)[0].lower()
    if scheme == SQLITE:
        return SQLITE
    if scheme in (POSTGRESQL, "postgres"):
        return POSTGRESQL
    raise BadInput(f"unsupported database URL scheme {scheme[:20]!r}",
                   hint="use sqlite:///PATH or postgresql://USER@HOST:PORT/DB")


def sqlite_path(url: str) -> str:
    """The file of a ``sqlite:///PATH`` URL (``:memory:`` for an in-memory database)."""
    rest = url.split(":", 1)[1]
    if not rest.startswith("///"):
        raise BadInput("a SQLite URL is sqlite:///PATH (an absolute path after three slashes)")
    return rest[3:] or ":memory:"


class Tx:
    """One transaction (or consistent read) on one connection: what store/ modules run SQL on."""

    def __init__(self, cursor, translate) -> None:
        self._cursor, self._translate = cursor, translate

    @property
    def dialect(self) -> str:
        return SQLITE if self._translate is None else POSTGRESQL

    def execute(self, sql: str, params: Sequence = ()) -> int:
        """Run one statement; the number of rows it changed (-1 for other statements)."""
        self._cursor.execute(self._sql(sql), params)
        return self._cursor.rowcount

    def executemany(self, sql: str, rows: Iterable[Sequence]) -> int:
        self._cursor.executemany(self._sql(sql), rows)
        return self._cursor.rowcount

    def all(self, sql: str, params: Sequence = ()) -> list[tuple]:
        self._cursor.execute(self._sql(sql), params)
        return self._cursor.fetchall()

    def one(self, sql: str, params: Sequence = ()) -> tuple | None:
        self._cursor.execute(self._sql(sql), params)
        return self._cursor.fetchone()

    def scalar(self, sql: str, params: Sequence = ()) -> Any:
        row = self.one(sql, params)
        return None if row is None else row[0]

    def _sql(self, sql: str) -> str:
        return sql if self._translate is None else self._translate(sql)


class Database:
    """A database URL and the connections of this process to it (one per thread)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.dialect = dialect_of(url)
        self.path = sqlite_path(url) if self.dialect == SQLITE else None
        self._local = threading.local()
        self._translated: dict[str, str] = {}

    @classmethod
    def open(cls, url: str) -> "Database":
        return cls(url)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Tx]:
        """A write transaction: committed when the block ends, rolled back if it raises.
        On SQLite it takes the write lock at once (BEGIN IMMEDIATE), waiting up to
        BUSY_TIMEOUT_SECONDS for another writer, so it never fails half-way on a lock."""
        with self._begin("BEGIN IMMEDIATE" if self.dialect == SQLITE else "BEGIN") as tx:
            yield tx

    @contextlib.contextmanager
    def read(self) -> Iterator[Tx]:
        """A read that sees one state of the database for all its statements."""
        begin = "BEGIN" if self.dialect == SQLITE else "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
        with self._begin(begin) as tx:
            yield tx

    def close(self) -> None:
        """Close this thread's connection (the next use opens a new one)."""
        connection = getattr(self._local, "connection", None)
        if connection is not None and self._local.pid == os.getpid():
            connection.close()
        self._local.connection = None

    @contextlib.contextmanager
    def _begin(self, begin: str) -> Iterator[Tx]:
        connection = self._connection()
        cursor = connection.cursor()
        cursor.execute(begin)
        try:
            yield Tx(cursor, None if self.dialect == SQLITE else self._postgresql_sql)
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        else:
            cursor.execute("COMMIT")
        finally:
            cursor.close()

    def _connection(self):
        local = self._local
        connection = getattr(local, "connection", None)
        if connection is None or local.pid != os.getpid():
            connection = self._connect()
            local.connection, local.pid = connection, os.getpid()
        return connection

    def _connect(self):
        if self.dialect == SQLITE:
            return connect_sqlite(self.path)
        return connect_postgresql(self.url)

    def _postgresql_sql(self, sql: str) -> str:
        translated = self._translated.get(sql)
        if translated is None:
            translated = self._translated[sql] = sql.replace("%", "%%").replace("?", "%s")
        return translated


def connect_sqlite(path: str) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), with the pragmas every
    connection of mtlskit uses: WAL, NORMAL sync, foreign keys, and a busy timeout."""
    connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None,
                                 check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA foreign_keys=ON")
    # Debian's SQLite overwrites every freed page with zeros (SQLITE_SECURE_DELETE): each
    # new CRL stored in crl_state would write its megabytes twice. The inventory holds
    # public data only (no keys, no secrets), so FAST: deleted content is still zeroed
    # where that costs no extra I/O (https://sqlite.org/pragma.html#pragma_secure_delete).
    connection.execute("PRAGMA secure_delete=FAST")
    return connection


def connect_postgresql(url: str):
    """A psycopg 3 connection in autocommit mode (transactions are explicit)."""
    try:
        import psycopg
    except ImportError:
        raise BadInput("PostgreSQL needs psycopg 3", hint="pip install 'mtlskit[postgres]'") from None
    conninfo = "postgresql:" + url.split(":", 1)[1]  # drop a SQLAlchemy driver suffix
    try:
        return psycopg.connect(conninfo, autocommit=True)
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BadInput(f"cannot connect to PostgreSQL: {first[:200]}") from None
