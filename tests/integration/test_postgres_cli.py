"""`mtlskit --database-url URL COMMAND` (also MTLSKIT_DATABASE_URL and database_url in
mtlskit.toml): every command on PostgreSQL; the URL's password never printed."""

from __future__ import annotations

import stat

import psycopg
import pytest

from mtlskit.cli.app import COMMAND_MODULES, modules_for

PASSWORD = "S3cret-Pw-9"


def _count(url: str, sql: str) -> int:
    with psycopg.connect(url) as connection:
        return connection.execute(sql).fetchone()[0]


def test_init_records_the_database_and_every_command_then_uses_it(cli, tmp_path, postgres_url):
    home = tmp_path / "home"
    result = cli("--database-url", postgres_url, "--home", home, "init", "--name", "PG CA", "--no-passphrase")
    assert result.code == 0, result.err
    assert f'database_url = "{postgres_url}"' in (home / "mtlskit.toml").read_text()
    assert stat.S_IMODE((home / "mtlskit.toml").stat().st_mode) == 0o600
    assert cli("--home", home, "issue", "client", "alice", "--out", tmp_path / "alice").code == 0
    assert cli("--home", home, "revoke", "alice", "--reason", "keyCompromise").code == 0
    listed = cli("--home", home, "list", "--all")
    assert listed.code == 0 and "alice" in listed.out and "revoked" in listed.out
    assert not (home / "inventory.db").exists()
    assert _count(postgres_url, "SELECT count(*) FROM certificates WHERE status = 'revoked'") == 1
    assert _count(postgres_url, "SELECT count(*) FROM certificates") == 3


def test_the_environment_variable_names_the_database(cli, tmp_path, postgres_url, monkeypatch):
    monkeypatch.setenv("MTLSKIT_DATABASE_URL", postgres_url)
    assert cli("--home", tmp_path / "home", "init", "--name", "Env CA", "--no-passphrase").code == 0
    assert _count(postgres_url, "SELECT count(*) FROM certificates") == 2


def test_the_option_wins_over_the_file(cli, tmp_path, postgres_server, postgres_url):
    home = tmp_path / "home"
    assert cli("--database-url", postgres_url, "--home", home, "init", "--name", "A", "--no-passphrase").code == 0
    other = postgres_server.create_database()
    assert cli("--database-url", other, "--home", home, "list").out.strip().endswith("0 certificate(s)")
    assert cli("--home", home, "list").out.strip().endswith("2 certificate(s)")


@pytest.fixture(scope="module")
def password_role(postgres_server):
    postgres_server.admin(f"CREATE ROLE mtlskit_app LOGIN PASSWORD 'right-{PASSWORD}'")
    return "mtlskit_app"


@pytest.mark.parametrize("tail", [
    "@127.0.0.1:{port}/postgres",              # wrong password
    "@127.0.0.1:1/postgres",                  # nothing listens
    "@127.0.0.1:{port}/postgres?bogus=1",     # libpq refuses the URI
    "@[::1/postgres",                         # libpq quotes a malformed URI whole
    "%zz@127.0.0.1:{port}/postgres",          # a bad percent escape inside the password
])
def test_a_refused_connection_never_shows_the_password(cli, tmp_path, postgres_server, password_role, tail):
    url = f"postgresql://{password_role}:{PASSWORD}" + tail.format(port=postgres_server.port)
    home = tmp_path / "home"
    result = cli("--database-url", url, "--home", home, "init", "--name", "X", "--no-passphrase")
    assert result.code == 2
    assert result.err.startswith("error: cannot connect to the database")
    assert PASSWORD not in result.out + result.err
    assert not (home / "ca").exists()


def test_an_unknown_scheme_is_refused_without_echo(cli, tmp_path):
    result = cli("--database-url", f"mysql://root:{PASSWORD}@db/x", "--home", tmp_path / "h", "list")
    assert result.code == 2 and result.err.startswith("error: database_url is not a database URL")
    assert PASSWORD not in result.out + result.err


def test_the_option_before_the_command_keeps_the_fast_path():
    modules = tuple(COMMAND_MODULES)
    assert modules_for(["--database-url", "postgresql://u@h/d", "list"], modules) == ("mtlskit.cli.inventory_cmd",)
    assert modules_for(["--database-url=postgresql://u@h/d", "--home", "x", "revoke"], modules) == (
        "mtlskit.cli.revoke_cmd",)
