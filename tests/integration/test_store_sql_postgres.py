"""store.sql on PostgreSQL (psycopg 3): the same calls as on SQLite give the same results.

The tests' server runs in a time zone that is not UTC (tests/support_postgres.py), so a
datetime stored or read in the session's zone instead of UTC shows here."""

from __future__ import annotations

import datetime as dt
import os
import threading

import pytest

from mtlskit.errors import BadInput
from mtlskit.store import sql
from mtlskit.store.sql import Database

UTC = dt.timezone.utc


@pytest.fixture()
def db(postgres_server):
    database = Database.open(postgres_server.create_database(with_schema=False))
    with database.transaction() as tx:
        tx.execute("CREATE TABLE t (k TEXT PRIMARY KEY, at TIMESTAMP WITHOUT TIME ZONE, n BIGINT)")
    yield database
    database.close()


def test_server_zone_is_not_utc(postgres_server):
    assert postgres_server.admin("SHOW TimeZone")[0][0] != "UTC"


def test_placeholders_rowcounts_and_percent_signs(db):
    with db.transaction() as tx:
        assert tx.execute("INSERT INTO t VALUES (?, ?, ?)", ("50%", None, 1)) == 1
        tx.executemany("INSERT INTO t VALUES (?, ?, ?)", [("a", None, 2), ("b", None, 2 ** 62)])
        assert tx.execute("UPDATE t SET n = n + 1 WHERE n < ?", (10,)) == 2
    with db.read() as tx:
        assert tx.all("SELECT k FROM t WHERE k LIKE '%\\%' ESCAPE '\\' ORDER BY k") == [("50%",)]
        assert tx.scalar("SELECT n FROM t WHERE k = ?", ("b",)) == 2 ** 62
        assert tx.one("SELECT k, n FROM t WHERE k = ?", ("zz",)) is None


def test_rolled_back_on_exception(db):
    with pytest.raises(RuntimeError):
        with db.transaction() as tx:
            tx.execute("INSERT INTO t VALUES ('gone', NULL, 1)")
            raise RuntimeError("boom")
    with db.read() as tx:
        assert tx.scalar("SELECT count(*) FROM t") == 0


def test_datetimes_are_utc_whatever_the_server_zone(db):
    paris = dt.timezone(dt.timedelta(hours=1))
    at = dt.datetime(2026, 12, 6, 3, 4, 5, 123456, tzinfo=paris)
    with db.transaction() as tx:
        tx.execute("INSERT INTO t VALUES ('a', ?, 1)", (at,))
    with db.read() as tx:
        stored = tx.scalar("SELECT at FROM t")
        text = tx.scalar("SELECT to_char(at, 'YYYY-MM-DD HH24:MI:SS') FROM t")
    assert sql.utc(stored) == at and sql.utc(stored).tzinfo is UTC
    assert text == "2026-12-06 02:04:05"  # stored as UTC wall time, as SQLite stores it


def test_each_thread_and_forked_child_has_its_own_connection(db):
    mine = db._connection()
    seen = []
    thread = threading.Thread(target=lambda: seen.append(db._connection()))
    thread.start()
    thread.join()
    assert seen[0] is not mine
    pid = os.fork()
    if pid == 0:
        ok = 1
        try:
            with db.transaction() as tx:
                tx.execute("INSERT INTO t VALUES ('child', NULL, 3)")
            ok = 0 if db._connection() is not mine else 1
        finally:
            os._exit(ok)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    with db.read() as tx:
        assert tx.scalar("SELECT n FROM t WHERE k = 'child'") == 3
    seen[0].close()


def test_a_read_sees_one_state(db, postgres_server):
    with db.transaction() as tx:
        tx.execute("INSERT INTO t VALUES ('a', NULL, 1)")
    other = Database.open(db.url)
    with db.read() as tx:
        before = tx.scalar("SELECT count(*) FROM t")
        with other.transaction() as write:
            write.execute("INSERT INTO t VALUES ('b', NULL, 2)")
        assert tx.scalar("SELECT count(*) FROM t") == before == 1
    other.close()


@pytest.mark.parametrize("url, shown", [
    ("postgresql://app:pw@h:5/db", "postgresql://app:***@h:5/db"),
    ("postgresql+psycopg://app:p@ss:w@h/db", "postgresql+psycopg://app:***@h/db"),
    ("postgresql://app@h/db", "postgresql://app@h/db"),
    ("sqlite:////x/inventory.db", "sqlite:////x/inventory.db"),
])
def test_redact(url, shown):
    assert sql.redact(url) == shown


def test_a_missing_database_is_refused_in_one_line(postgres_server):
    url = postgres_server.url("no_such_database").replace("postgres@", "postgres:Pw-123@")
    with pytest.raises(BadInput) as refused:
        with Database.open(url).read() as tx:
            tx.scalar("SELECT 1")
    assert "no_such_database" in refused.value.message and "Pw-123" not in refused.value.message


def test_sessions_compress_large_values_with_lz4_and_read_bytes_whole(db):
    payload = bytes(range(256)) * 20_000   # 5 MB, as a CRL of 100,000 entries
    with db.transaction() as tx:
        assert tx.scalar("SHOW default_toast_compression") == "lz4"
        tx.execute("CREATE TABLE blobs (k TEXT PRIMARY KEY, der BYTEA)")
        tx.execute("INSERT INTO blobs VALUES (?, ?)", ("crl", payload))
    with db.read() as tx:
        assert tx.scalar("SELECT der FROM blobs WHERE k = ?", ("crl",)) == payload
        assert tx.scalar("SELECT pg_column_compression(der) FROM blobs") == "lz4"


def test_a_connection_the_server_ended_is_replaced(db, postgres_server):
    with db.read() as tx:
        pid = tx.scalar("SELECT pg_backend_pid()")
    postgres_server.admin("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(Exception):   # the statement that meets the break fails
        with db.read() as tx:
            tx.scalar("SELECT 1")
    with db.read() as tx:            # the next one runs on a new connection
        assert tx.scalar("SELECT pg_backend_pid()") != pid
