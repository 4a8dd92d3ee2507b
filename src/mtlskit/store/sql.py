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
SESSION_UTC = "SET TIME ZONE 'UTC'"
# Every SQLite connection of mtlskit: WAL, NORMAL sync, foreign keys, and secure_delete
# FAST. Debian's SQLite overwrites every freed page with zeros (SQLITE_SECURE_DELETE):
# each new CRL stored in crl_state would write its megabytes twice. The inventory holds
# public data only (no keys, no secrets), so FAST: deleted content is still zeroed where
# that costs no extra I/O (https://sqlite.org/pragma.html#pragma_secure_delete).
SQLITE_PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL", "PRAGMA foreign_keys=ON",
                  "PRAGMA secure_delete=FAST")
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


def placeholders(count: int) -> str:
    """``?, ?, ...`` for an ``IN (...)`` of ``count`` values."""
    return ", ".join("?" * count)


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


def redact(url: str) -> str:
    """The URL with its password (if any) replaced by ``***``: what may be printed or logged."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        return url
    authority, slash, path = rest.partition("/")
    credentials, at, host = authority.rpartition("@")
    if not at or ":" not in credentials:
        return url
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}{slash}{path}"


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

    def chunks(self, sql: str, params: Sequence = (), size: int = 10_000) -> Iterator[list[tuple]]:
        """The rows of one query, ``size`` at a time, through a cursor of their own: other
        statements may run on this transaction between two chunks (close the generator,
        or exhaust it, to close the cursor)."""
        cursor = self._cursor.connection.cursor()
        try:
            cursor.execute(self._sql(sql), params)
            while rows := cursor.fetchmany(size):
                yield rows
        finally:
            cursor.close()

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
        with self._begin("BEGIN IMMEDIATE" if self.dialect == SQLITE else "BEGIN", writes=True) as tx:
            yield tx

    @contextlib.contextmanager
    def read(self) -> Iterator[Tx]:
        """A read that sees one state of the database for all its statements."""
        begin = "BEGIN" if self.dialect == SQLITE else "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
        with self._begin(begin, writes=False) as tx:
            yield tx

    def close(self) -> None:
        """Close this thread's connection (the next use opens a new one)."""
        connection = getattr(self._local, "connection", None)
        if connection is not None and self._local.pid == os.getpid():
            connection.close()
        self._local.connection = None

    @contextlib.contextmanager
    def _begin(self, begin: str, writes: bool) -> Iterator[Tx]:
        connection = self._connection()
        outer = getattr(self._local, "active", None)
        if outer is not None:
            # Nested on this thread (one connection per thread): a read, or a write inside
            # a write, joins the open transaction and sees its changes; they commit with it.
            if writes and not outer[1]:
                raise RuntimeError("a write transaction cannot start inside a read of the same thread")
            yield outer[0]
            return
        # PostgreSQL: results in binary format (bytea, timestamps and integers arrive as
        # they are stored; text format sends a CRL's megabytes as twice as many hex digits)
        cursor = connection.cursor() if self.dialect == SQLITE else connection.cursor(binary=True)
        cursor.execute(begin)
        tx = Tx(cursor, None if self.dialect == SQLITE else self._postgresql_sql)
        self._local.active = (tx, writes)
        try:
            yield tx
        except BaseException:
            self._local.active = None
            cursor.execute("ROLLBACK")
            raise
        else:
            self._local.active = None
            cursor.execute("COMMIT")
        finally:
            self._local.active = None
            cursor.close()

    def _connection(self):
        local = self._local
        connection = getattr(local, "connection", None)
        # a PostgreSQL connection the server or the network broke (a restart, a fail-over)
        # is replaced: the statement that met the break failed, the next one reconnects
        if connection is None or local.pid != os.getpid() or getattr(connection, "broken", False):
            connection = self._connect()
            local.connection, local.pid, local.active = connection, os.getpid(), None
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
    connection of mtlskit uses (SQLITE_PRAGMAS) and a busy timeout."""
    connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None,
                                 check_same_thread=False)
    for pragma in SQLITE_PRAGMAS:
        connection.execute(pragma)
    return connection


def connect_postgresql(url: str):
    """A psycopg 3 connection in autocommit mode (transactions are explicit).

    Raises:
        BadInput: psycopg is missing, or the connection failed (the message is libpq's
            first line, without the URL's password even where libpq quotes the URL).
    """
    try:
        import psycopg
    except ImportError:
        raise BadInput("PostgreSQL needs psycopg 3", hint="pip install 'mtlskit[postgres]'") from None
    conninfo = "postgresql:" + url.split(":", 1)[1]  # drop a SQLAlchemy driver suffix
    try:
        connection = psycopg.connect(conninfo, autocommit=True)
        # Datetime columns hold UTC wall time (TIMESTAMP WITHOUT TIME ZONE, as on SQLite):
        # the session's zone must be UTC, or PostgreSQL shifts aware values into its own.
        connection.execute(SESSION_UTC)
    except psycopg.Error as exc:
        raise connection_refused(url, exc) from None
    _fast_toast(connection, psycopg)
    return connection


def _fast_toast(connection, psycopg) -> None:
    """Compress large values (a CRL in ``crl_state.der``: megabytes, rewritten at every
    revocation) with LZ4 instead of pglz: at 100,000 entries storing one went from ~550 to
    ~180 ms. A server built without LZ4 keeps pglz."""
    try:
        connection.execute("SET default_toast_compression = 'lz4'")
    except psycopg.Error:
        pass


def connection_refused(url: str, exc: BaseException) -> BadInput:
    """The one-line refusal for a database that cannot be reached: the driver's first
    line, scrubbed of the URL and of its password (libpq quotes a malformed URL whole)."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return BadInput(f"cannot connect to the database: {scrub(first, url)[:200]}",
                    hint="check database_url (--database-url, MTLSKIT_DATABASE_URL or mtlskit.toml)")


def scrub(text: str, url: str) -> str:
    """``text`` without ``url`` (shown redacted instead) or its password, raw or decoded."""
    text = text.replace(url, redact(url))
    password = _password_of(url)
    if password:
        from urllib.parse import unquote

        for form in {password, unquote(password)}:
            text = text.replace(form, "***")
    return text


def _password_of(url: str) -> str | None:
    authority = url.partition("://")[2].partition("/")[0]
    credentials, at, _ = authority.rpartition("@")
    user, colon, password = credentials.partition(":")
    return password if at and colon else None
