"""The SQLite connection settings of store.db.make_engine."""

from __future__ import annotations

from sqlalchemy import text

from mtlskit.store.db import make_engine


def test_sqlite_pragmas(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'inventory.db'}")
    with engine.connect() as connection:
        def pragma(name):
            return connection.execute(text(f"PRAGMA {name}")).scalar()

        assert pragma("journal_mode") == "wal"
        assert pragma("foreign_keys") == 1
        assert pragma("synchronous") == 1  # NORMAL
        assert pragma("secure_delete") == 2  # FAST: freed pages are not rewritten with zeros
    engine.dispose()


def test_rewriting_a_large_value_writes_it_once(tmp_path):
    """What secure_delete=FAST is for: replacing a 2 MB CRL adds about 2 MB to the
    write-ahead log, not 4 (the old pages are freed, not zeroed)."""
    path = tmp_path / "inventory.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        connection.execute(text("PRAGMA wal_autocheckpoint=0"))
        connection.execute(text("CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB)"))
        connection.execute(text("INSERT INTO blobs VALUES (1, randomblob(2000000))"))
    with engine.connect() as connection:
        connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    with engine.begin() as connection:
        connection.execute(text("UPDATE blobs SET data = randomblob(2000000) WHERE id = 1"))
    written = (tmp_path / "inventory.db-wal").stat().st_size
    assert 2_000_000 < written < 2_300_000
    engine.dispose()
