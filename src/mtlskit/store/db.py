"""Engine creation and schema migration (Alembic, run in-process)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect, text

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# The newest migration. Kept here so that opening an up-to-date database does not import
# Alembic (a fifth of the CLI's start-up); a unit test checks it against Alembic's head.
SCHEMA_HEAD = "0005_service"


def make_engine(database_url: str) -> Engine:
    """Create the engine; SQLite gets WAL, a busy timeout and enforced foreign keys."""
    is_sqlite = database_url.startswith("sqlite")
    engine = create_engine(database_url, connect_args={"timeout": 30} if is_sqlite else {})
    if is_sqlite:
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # Debian's SQLite overwrites every freed page with zeros (SQLITE_SECURE_DELETE): each
    # new CRL stored in crl_state would write its megabytes twice, once as the new value
    # and once zeroing the old one. The inventory holds public data only (certificates,
    # CRLs, audit events; no keys, no secrets), so FAST: deleted content is still zeroed
    # where that costs no extra I/O (https://sqlite.org/pragma.html#pragma_secure_delete).
    cursor.execute("PRAGMA secure_delete=FAST")
    cursor.close()


def _alembic_config():
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration; cheap when it already is."""
    if current_revision(engine) == SCHEMA_HEAD:
        return
    from alembic import command

    config = _alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
