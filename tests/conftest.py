"""Shared fixtures: the CLI run in-process, and CA homes built once per session.

``MTLSKIT_TEST_DATABASE=postgresql`` runs the tests on PostgreSQL (`make test` runs the
integration and e2e tiers so a second time): every CA home that `init` creates in the
test process gets a fresh database of its own on the session's PostgreSQL
(tests/support_postgres.py), recorded in its mtlskit.toml, so every later command on that
home, in-process or in a child process (`serve`, `agent`), runs on PostgreSQL. Tests that
are about SQLite itself are listed in SQLITE_ONLY and skipped there."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from mtlskit.cli.app import main
from tests import support_postgres


@dataclasses.dataclass
class CliResult:
    code: int
    out: str
    err: str


TEST_DATABASE_ENV = "MTLSKIT_TEST_DATABASE"
_KEPT_ENV = ("MTLSKIT_REFERENCE_ENCODERS", TEST_DATABASE_ENV)

# Tests about SQLite itself (its files, WAL, pragmas, a sqlite:/// URL they build): they
# run on SQLite only, and are skipped when the suite runs on PostgreSQL.
SQLITE_ONLY: tuple[str, ...] = (
    "tests/integration/test_cli_startup.py",                 # import pins (psycopg is imported there)
    "tests/integration/test_inventory_serial_lookup.py",     # SQLite's EXPLAIN QUERY PLAN
    "tests/integration/test_crl_refill.py",                  # edits inventory.db with sqlite3
)


def on_postgresql() -> bool:
    """Does this run put the tests' CA homes on PostgreSQL?"""
    value = os.environ.get(TEST_DATABASE_ENV, "sqlite")
    if value not in ("sqlite", "postgresql"):
        raise pytest.UsageError(f"{TEST_DATABASE_ENV} must be sqlite or postgresql")
    return value == "postgresql"


def pytest_collection_modifyitems(config, items):
    if not on_postgresql():
        return
    skip = pytest.mark.skip(reason="about SQLite itself (SQLITE_ONLY in tests/conftest.py)")
    again = pytest.mark.skip(reason="runs on PostgreSQL in every run already")
    for item in items:
        if item.nodeid.startswith(SQLITE_ONLY):
            item.add_marker(skip)
        elif "postgres" in item.path.name:   # test_postgres_*.py, test_replicas_postgres.py
            item.add_marker(again)


@pytest.fixture(scope="session", autouse=True)
def _homes_on_the_test_database(request):
    """On PostgreSQL runs: `init` in this process puts each new home on a fresh database."""
    if not on_postgresql():
        yield
        return
    server = request.getfixturevalue("postgres_server")
    from mtlskit.ca import setup

    initialize = setup.initialize

    def initialize_on_postgresql(settings, *args, **kwargs):
        if settings.default_database:
            settings = dataclasses.replace(settings, database_url=server.create_database())
        return initialize(settings, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(setup, "initialize", initialize_on_postgresql)
        yield


@pytest.fixture(autouse=True)
def _no_ambient_mtlskit_env(monkeypatch):
    """Tests never see the developer's own CA home or passphrase (the encoder switch
    of `make test-reference`, MTLSKIT_REFERENCE_ENCODERS, and the tests' database choice,
    MTLSKIT_TEST_DATABASE, are kept: they are no secrets)."""
    for name in list(os.environ):
        if name.startswith("MTLSKIT_") and name not in _KEPT_ENV:
            monkeypatch.delenv(name)


@pytest.fixture
def cli(capsys):
    """Run `mtlskit ARGS` in-process; returns code, stdout and stderr."""

    def run(*args: str | Path) -> CliResult:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def _init_home(home: Path, *extra: str) -> Path:
    code = main(["--home", str(home), "init", "--name", "Test CA", "--no-passphrase", *extra])
    assert code == 0, f"init failed with {code}"
    return home


@pytest.fixture(scope="session")
def ca_home(tmp_path_factory) -> Path:
    """A root + intermediate EC P-256 CA without passphrase, shared by the session.

    Tests that revoke or otherwise change the CA must use `fresh_home` instead.
    """
    return _init_home(tmp_path_factory.mktemp("ca") / "home")


@pytest.fixture
def fresh_home(tmp_path) -> Path:
    return _init_home(tmp_path / "home")


@pytest.fixture
def make_home(tmp_path):
    """Build a CA home with extra init flags: make_home("--no-intermediate")."""
    counter = iter(range(1000))

    def build(*extra: str) -> Path:
        return _init_home(tmp_path / f"home{next(counter)}", *extra)

    return build


@pytest.fixture(scope="session")
def postgres_server():
    """One PostgreSQL per test session (per xdist worker), started by the tests
    (tests/support_postgres.py) and stopped by PID at the end."""
    if not support_postgres.available():
        pytest.skip("PostgreSQL server binaries are not installed (scripts/system-deps.sh)")
    server = support_postgres.PostgresServer.start()
    yield server
    server.close()


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """The URL of a database of this test's own, already holding mtlskit's schema."""
    url = postgres_server.create_database()
    yield url
    postgres_server.drop_database(url)
