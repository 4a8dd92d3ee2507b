"""store.sql on SQLite: a read or write nested in a write transaction of the same thread
joins it (one connection per thread), a write inside a read is refused, and Tx.chunks
streams a query while other statements run on the same transaction."""

import sqlite3

import pytest

from mtlskit.store.dberrors import database_errors, is_integrity_error
from mtlskit.store.sql import Database


@pytest.fixture()
def db(tmp_path):
    database = Database.open(f"sqlite:///{tmp_path / 'x.db'}")
    with database.transaction() as tx:
        tx.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
    yield database
    database.close()


def test_a_nested_read_sees_the_open_transaction_and_commits_with_it(db):
    with db.transaction() as tx:
        tx.execute("INSERT INTO t VALUES (1, 'a')")
        with db.read() as inner:
            assert inner.scalar("SELECT v FROM t WHERE k = 1") == "a"
        with db.transaction() as joined:
            joined.execute("INSERT INTO t VALUES (2, 'b')")
    with db.read() as tx:
        assert tx.all("SELECT k FROM t ORDER BY k") == [(1,), (2,)]


def test_a_failure_inside_a_nested_block_rolls_back_the_whole_transaction(db):
    with pytest.raises(RuntimeError), db.transaction() as tx:
        tx.execute("INSERT INTO t VALUES (1, 'a')")
        with db.transaction() as joined:
            joined.execute("INSERT INTO t VALUES (2, 'b')")
            raise RuntimeError("refused")
    with db.read() as tx:
        assert tx.scalar("SELECT count(*) FROM t") == 0
    with db.transaction() as tx:  # and the connection is usable again
        tx.execute("INSERT INTO t VALUES (3, 'c')")


def test_a_write_inside_a_read_is_refused(db):
    with pytest.raises(RuntimeError, match="inside a read"), db.read():
        with db.transaction():
            pass
    with db.transaction() as tx:
        assert tx.execute("INSERT INTO t VALUES (1, 'a')") == 1


def test_chunks_stream_on_a_cursor_of_their_own(db):
    with db.transaction() as tx:
        tx.executemany("INSERT INTO t VALUES (?, ?)", [(k, str(k)) for k in range(1, 26)])
    with db.transaction() as tx:
        seen = []
        for rows in tx.chunks("SELECT k FROM t ORDER BY k", (), 10):
            seen.append(len(rows))
            tx.executemany("UPDATE t SET v = 'x' WHERE k = ?", rows)  # between two chunks
        assert seen == [10, 10, 5]
        assert tx.scalar("SELECT count(*) FROM t WHERE v = 'x'") == 25


def test_the_driver_errors_are_told_apart_without_psycopg(db):
    with pytest.raises(database_errors()) as caught, db.transaction() as tx:
        tx.execute("INSERT INTO t VALUES (1, 'a')")
        tx.execute("INSERT INTO t VALUES (1, 'again')")
    assert isinstance(caught.value, sqlite3.IntegrityError) and is_integrity_error(caught.value)
    assert not is_integrity_error(sqlite3.OperationalError("database is locked"))
