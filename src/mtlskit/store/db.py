"""Opening the inventory database and migrating its schema.

The runtime runs plain SQL (:mod:`mtlskit.store.sql`); SQLAlchemy and Alembic are imported
only to run the migrations of a database whose schema is behind (both cost a CLI process
more start-up than a whole command may take). Whether it is behind is one plain read of
``alembic_version``.
"""

from __future__ import annotations

from pathlib import Path

from mtlskit.store.sql import BUSY_TIMEOUT_SECONDS, SQLITE, Database

# what mtlskit.store.sql.connect_sqlite sets on every connection (see there why)
SQLITE_PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL", "PRAGMA foreign_keys=ON",
                  "PRAGMA secure_delete=FAST")

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# The newest migration. Kept here so that opening an up-to-date database imports neither
# SQLAlchemy nor Alembic; a unit test checks it against Alembic's head.
SCHEMA_HEAD = "0005_service"


def open_database(database_url: str) -> Database:
    """The database of ``database_url``, its schema brought to the newest migration."""
    database = Database.open(database_url)
    migrate(database)
    return database


def current_revision(database: Database) -> str | None:
    """The migration the schema is at (None: no schema yet), with plain SQL."""
    with database.read() as tx:
        if database.dialect == SQLITE:
            exists = tx.scalar("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'")
        else:
            exists = tx.scalar("SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema()"
                               " AND table_name = 'alembic_version'")
        return tx.scalar("SELECT version_num FROM alembic_version") if exists else None


def migrate(database: Database) -> None:
    """Bring the schema to the newest migration; one read when it already is."""
    if current_revision(database) == SCHEMA_HEAD:
        return
    run_migrations(database.url)


def run_migrations(database_url: str) -> None:
    """Alembic's upgrade to head, on an engine of its own (the only SQLAlchemy use)."""
    from alembic import command

    engine = make_engine(database_url)
    try:
        config = _alembic_config()
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    finally:
        engine.dispose()


def make_engine(database_url: str):
    """A SQLAlchemy engine for Alembic: SQLite with the pragmas of every mtlskit connection
    (WAL, a busy timeout, foreign keys), PostgreSQL through psycopg 3."""
    from sqlalchemy import create_engine, event

    if database_url.startswith(SQLITE):
        engine = create_engine(database_url, connect_args={"timeout": BUSY_TIMEOUT_SECONDS})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    scheme, rest = database_url.split(":", 1)
    if "+" not in scheme:
        scheme = "postgresql+psycopg"
    return create_engine(f"{scheme}:{rest}")


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in SQLITE_PRAGMAS:
        cursor.execute(pragma)
    cursor.close()


def _alembic_config():
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head()
