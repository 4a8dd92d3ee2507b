"""Opening the inventory database and migrating its schema.

The runtime runs plain SQL (:mod:`mtlskit.store.sql`); SQLAlchemy and Alembic are imported
only to run the migrations of a database whose schema is behind (both cost a CLI process
more start-up than a whole command may take). Whether it is behind is one plain read of
``alembic_version``.
"""

from __future__ import annotations

from pathlib import Path

from mtlskit.store.sql import BUSY_TIMEOUT_SECONDS, SESSION_UTC, SQLITE, SQLITE_PRAGMAS, Database


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
    """Alembic's upgrade to head, on an engine of its own (the only SQLAlchemy use).

    On PostgreSQL the upgrade runs under a database lock (an advisory lock held by the
    migration's transaction, DDL being transactional there) and checks the revision again
    once it holds it: replicas that open a new or older database at the same moment
    upgrade it once, one after the other, the others finding it done."""
    from alembic import command
    from sqlalchemy import text

    engine = make_engine(database_url)
    try:
        config = _alembic_config()
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                from mtlskit.store.locks import MIGRATE, lock_key

                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_key(MIGRATE)})
                if _revision_on(connection) == SCHEMA_HEAD:
                    return
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    finally:
        engine.dispose()


def _revision_on(connection) -> str | None:
    from sqlalchemy import inspect, text

    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def alembic_url(database_url: str) -> str:
    """The URL SQLAlchemy (Alembic) opens: PostgreSQL through psycopg 3, whatever the
    URL names (``postgresql://``, ``postgres://``); other URLs unchanged."""
    scheme, _, rest = database_url.partition("://")
    if scheme.lower() in ("postgresql", "postgres"):
        return f"postgresql+psycopg://{rest}"
    return database_url


def make_engine(database_url: str):
    """A SQLAlchemy engine for Alembic: SQLite with the pragmas of every mtlskit connection
    (WAL, a busy timeout, foreign keys), PostgreSQL through psycopg 3."""
    from sqlalchemy import create_engine, event

    if database_url.startswith(SQLITE):
        engine = create_engine(database_url, connect_args={"timeout": BUSY_TIMEOUT_SECONDS})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_engine(alembic_url(database_url))
    event.listen(engine, "connect", _postgresql_utc)
    return engine


def _postgresql_utc(dbapi_connection, _record) -> None:
    with dbapi_connection.cursor() as cursor:  # see store.sql.connect_postgresql
        cursor.execute(SESSION_UTC)
    dbapi_connection.commit()


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
