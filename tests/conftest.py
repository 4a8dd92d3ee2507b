"""Shared fixtures: the CLI run in-process, and CA homes built once per session."""

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


@pytest.fixture(autouse=True)
def _no_ambient_mtlskit_env(monkeypatch):
    """Tests never see the developer's own CA home or passphrase (the encoder switch
    of `make test-reference`, MTLSKIT_REFERENCE_ENCODERS, is kept: it is no secret)."""
    for name in list(os.environ):
        if name.startswith("MTLSKIT_") and name != "MTLSKIT_REFERENCE_ENCODERS":
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
