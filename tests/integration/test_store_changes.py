"""store.changes: the watch that tells the OCSP source another process committed."""

from __future__ import annotations

import sqlite3

import pytest

from mtlskit.store import changes
from mtlskit.store.sql import Database


def _commit(path, value: int) -> None:
    with sqlite3.connect(path) as other:   # another connection, as another process would be
        other.execute("INSERT INTO t VALUES (?)", (value,))


@pytest.fixture
def database(tmp_path):
    path = tmp_path / "inventory.db"
    db = Database.open(f"sqlite:///{path}")
    with db.transaction() as tx:
        tx.execute("CREATE TABLE t (x INTEGER)")
    yield db, str(path)
    db.close()


def test_the_wal_index_watch_moves_once_per_commit_of_another_connection(database):
    db, path = database
    watch = changes.change_watch(db)
    assert isinstance(watch, changes._WalIndexWatch)
    assert watch.moved() is False
    for value in range(3):
        _commit(path, value)
        assert watch.moved() is True
        assert watch.moved() is False
    watch.close()


def test_the_watch_survives_every_other_connection_closing(database):
    db, path = database
    watch = changes.change_watch(db)
    db.close()                    # the serving process lets go of the database
    _commit(path, 1)              # the -shm file must still be the one the watch maps
    assert watch.moved() is True
    watch.close()


def test_the_data_version_fallback_moves_too(database, monkeypatch):
    db, path = database
    monkeypatch.setattr(changes, "_map_wal_index", lambda _path: None)
    watch = changes.change_watch(db)
    assert isinstance(watch, changes._DataVersionWatch)
    assert watch.moved() is False
    _commit(path, 1)
    assert watch.moved() is True and watch.moved() is False
    watch.close()


def test_other_databases_move_every_interval():
    ticks = iter([0.0, 1.0, 5.0, 6.0, 10.5])
    watch = changes.change_watch(Database.open("sqlite:///:memory:"), interval=5.0, monotonic=lambda: next(ticks))
    assert [watch.moved() for _ in range(4)] == [False, True, False, True]
