"""store.sql on SQLite: transactions, datetimes as SQLAlchemy stored them, fork safety."""

import datetime as dt
import os
import sqlite3
import threading

import pytest

from mtlskit.errors import BadInput
from mtlskit.store import sql
from mtlskit.store.sql import Database

UTC = dt.timezone.utc


@pytest.fixture()
def db(tmp_path):
    database = Database.open(f"sqlite:///{tmp_path / 'x.db'}")
    with database.transaction() as tx:
        tx.execute("CREATE TABLE t (k TEXT PRIMARY KEY, at DATETIME, n INTEGER)")
    return database


def test_committed_and_rolled_back(db):
    with db.transaction() as tx:
        assert tx.execute("INSERT INTO t VALUES (?, ?, ?)", ("a", None, 1)) == 1
    with pytest.raises(RuntimeError):
        with db.transaction() as tx:
            tx.execute("INSERT INTO t VALUES (?, ?, ?)", ("b", None, 2))
            raise RuntimeError("boom")
    with db.read() as tx:
        assert tx.all("SELECT k, n FROM t") == [("a", 1)]
        assert tx.scalar("SELECT n FROM t WHERE k = ?", ("zz",)) is None


def test_datetimes_are_stored_as_utc_text_and_read_back_aware(db):
    paris = dt.timezone(dt.timedelta(hours=1))
    at = dt.datetime(2026, 12, 6, 3, 4, 5, tzinfo=paris)
    with db.transaction() as tx:
        tx.execute("INSERT INTO t VALUES (?, ?, ?)", ("a", at, 1))
        tx.execute("INSERT INTO t VALUES (?, ?, ?)", ("b", dt.datetime(2026, 12, 6, 2, 4, 6, tzinfo=UTC), 2))
    with db.read() as tx:
        stored = tx.scalar("SELECT at FROM t WHERE k = 'a'")
        order = [k for (k,) in tx.all("SELECT k FROM t WHERE at >= ? ORDER BY at",
                                      (dt.datetime(2026, 12, 6, 2, 4, 5, tzinfo=UTC),))]
    assert stored == "2026-12-06 02:04:05.000000"   # the text SQLAlchemy's SQLite DateTime wrote
    assert sql.utc(stored) == at and sql.utc(stored).tzinfo is UTC
    assert order == ["a", "b"]


def test_each_thread_and_each_forked_child_has_its_own_connection(db):
    mine = db._connection()
    seen = []
    thread = threading.Thread(target=lambda: seen.append(db._connection()))
    thread.start()
    thread.join()
    assert seen[0] is not mine
    pid = os.fork()
    if pid == 0:  # the child writes on a new connection, never the parent's
        try:
            ok = db._connection() is not mine
            with db.transaction() as tx:
                tx.execute("INSERT INTO t VALUES ('child', NULL, 3)")
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    with db.read() as tx:
        assert tx.scalar("SELECT n FROM t WHERE k = 'child'") == 3


def test_a_second_writer_waits_instead_of_failing(db):
    other = sqlite3.connect(db.path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    released = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    released.start()
    with db.transaction() as tx:
        tx.execute("INSERT INTO t VALUES ('late', NULL, 4)")
    released.join()
    other.close()


@pytest.mark.parametrize("url", ["mysql://x/y", "oracle:", "sqlite://relative.db", ""])
def test_unsupported_urls_are_refused(url):
    with pytest.raises(BadInput):
        Database.open(url)


def test_postgresql_placeholders_and_percent_signs():
    db = Database.open("postgresql://u@127.0.0.1:1/x")
    assert db.dialect == "postgresql" and db.path is None
    assert db._postgresql_sql("SELECT a FROM t WHERE b LIKE '%x' AND c = ?") == \
        "SELECT a FROM t WHERE b LIKE '%%x' AND c = %s"
