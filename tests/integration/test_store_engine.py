"""The SQLite connection settings: store.sql's connections (the runtime) and the engine
store.db makes for Alembic's migrations set the same pragmas."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from mtlskit.store.db import make_engine
from mtlskit.store.sql import Database

PRAGMAS = {"journal_mode": "wal", "foreign_keys": 1, "synchronous": 1,  # NORMAL
           "secure_delete": 2}  # FAST: freed pages are not rewritten with zeros


def test_sqlite_pragmas_of_the_runtime(tmp_path):
    db = Database.open(f"sqlite:///{tmp_path / 'inventory.db'}")
    with db.read() as tx:
        assert {name: tx.scalar(f"PRAGMA {name}") for name in PRAGMAS} == PRAGMAS
    db.close()


def test_sqlite_pragmas_of_the_migrations(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'inventory.db'}")
    with engine.connect() as connection:
        assert {name: connection.execute(text(f"PRAGMA {name}")).scalar() for name in PRAGMAS} == PRAGMAS
    engine.dispose()


@pytest.mark.parametrize("size", [2_000_000])
def test_rewriting_a_large_value_writes_it_once(tmp_path, size):
    """What secure_delete=FAST is for: replacing a 2 MB CRL adds about 2 MB to the
    write-ahead log, not 4 (the old pages are freed, not zeroed)."""
    path = tmp_path / "inventory.db"
    db = Database.open(f"sqlite:///{path}")
    with db.transaction() as tx:
        tx.execute("PRAGMA wal_autocheckpoint=0")
        tx.execute("CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB)")
        tx.execute("INSERT INTO blobs VALUES (1, randomblob(?))", (size,))
    db._connection().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with db.transaction() as tx:
        tx.execute("UPDATE blobs SET data = randomblob(?) WHERE id = 1", (size,))
    written = (tmp_path / "inventory.db-wal").stat().st_size
    assert size < written < size * 1.15
    db.close()
