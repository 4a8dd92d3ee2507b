"""`mtlskit backup` / `restore` of a home whose inventory is in PostgreSQL (a real server the
tests start): pg_dump of one snapshot, restored into another, empty database; the
password of the URL never in the children's argv or environment."""

from __future__ import annotations

import json
import tarfile

import psycopg
import pytest

from mtlskit.cli.app import main
from tests.support_ocsp import mtlskit_cli


def _count(url: str, sql: str) -> int:
    with psycopg.connect(url) as connection:
        return connection.execute(sql).fetchone()[0]


@pytest.fixture
def pg_home(tmp_path, postgres_server):
    url = postgres_server.create_database(with_schema=False)
    home = tmp_path / "home"
    assert main(["--database-url", url, "--home", str(home), "init", "--no-passphrase"]) == 0
    for name in ("alice", "bob"):
        assert main(["--home", str(home), "issue", "client", name, "--out", str(tmp_path / name)]) == 0
    assert main(["--home", str(home), "revoke", "bob", "--reason", "key-compromise"]) == 0
    yield home, url
    postgres_server.drop_database(url)


def test_backup_and_restore_into_an_empty_database(pg_home, postgres_server, tmp_path, capsys):
    home, url = pg_home
    archive = tmp_path / "pg.tar"
    capsys.readouterr()
    assert main(["--home", str(home), "backup", str(archive), "--json"]) == 0
    manifest = json.loads(capsys.readouterr().out)["manifest"]
    assert manifest["database"] == "postgresql" and manifest["inventory"]["revoked"] == 1
    with tarfile.open(archive) as tar:
        assert "inventory.pgdump" in tar.getnames() and "inventory.db" not in tar.getnames()
    target = postgres_server.create_database(with_schema=False)
    fresh = tmp_path / "fresh"
    assert main(["restore", str(archive), "--home", str(fresh), "--database-url", target]) == 0
    assert json.dumps(target) in (fresh / "mtlskit.toml").read_text()
    assert not (fresh / "inventory.pgdump").exists() and not (fresh / "inventory.db").exists()
    assert _count(target, "SELECT count(*) FROM certificates WHERE status = 'revoked'") == 1
    capsys.readouterr()
    assert main(["--home", str(fresh), "list", "--json", "--all"]) == 0
    assert {r["name"]: r["status"] for r in json.loads(capsys.readouterr().out)}["bob"] == "revoked"
    postgres_server.drop_database(target)


def test_restore_refuses_a_database_that_is_not_empty(pg_home, postgres_server, tmp_path, capsys):
    home, url = pg_home
    archive = tmp_path / "pg.tar"
    assert main(["--home", str(home), "backup", str(archive)]) == 0
    busy = postgres_server.create_database()          # holds mtlskit's schema already
    capsys.readouterr()
    assert main(["restore", str(archive), "--home", str(tmp_path / "x"), "--database-url", busy]) == 2
    assert "is not empty" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and _count(busy, "SELECT count(*) FROM certificates") == 0
    assert main(["restore", str(archive), "--home", str(tmp_path / "y")]) == 2   # its own database: not empty
    postgres_server.drop_database(busy)


def test_the_password_reaches_pg_dump_in_a_passfile_only(pg_home, postgres_server, tmp_path, monkeypatch):
    home, url = pg_home
    postgres_server.admin("CREATE ROLE backup_reader LOGIN SUPERUSER PASSWORD 'Pw-Secret-42'")
    database = url.rsplit("/", 1)[1]
    secret_url = postgres_server.url(database, user="backup_reader", password="Pw-Secret-42")
    import subprocess

    seen = []
    real_run = subprocess.run

    def spy(argv, *args, **kwargs):
        seen.append((list(argv), dict(kwargs.get("env") or {})))
        return real_run(argv, *args, **kwargs)

    monkeypatch.setattr(subprocess, "run", spy)
    monkeypatch.setenv("MTLSKIT_CA_PASSPHRASE", "not-for-children")
    assert main(["--database-url", secret_url, "--home", str(home), "backup", str(tmp_path / "s.tar")]) == 0
    assert seen and all("Pw-Secret-42" not in " ".join(argv) for argv, _ in seen)
    assert all("Pw-Secret-42" not in " ".join(env.values()) for _, env in seen)
    assert all(not any(k.startswith("MTLSKIT_") for k in env) for _, env in seen)
    postgres_server.admin("DROP ROLE backup_reader")


def test_restore_force_refuses_a_database_in_use(pg_home, postgres_server, tmp_path, capsys):
    home, url = pg_home
    archive = tmp_path / "pg.tar"
    assert main(["--home", str(home), "backup", str(archive)]) == 0
    before = _count(url, "SELECT count(*) FROM audit_events")
    with psycopg.connect(url) as holder:           # what a serve replica would hold
        holder.execute("SELECT 1")
        capsys.readouterr()
        assert main(["restore", str(archive), "--home", str(tmp_path / "x"), "--database-url", url, "--force"]) == 2
        assert "is in use" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and _count(url, "SELECT count(*) FROM audit_events") == before
    # "stop what uses it": this test process still holds the connections of the commands it ran
    postgres_server.admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                          (url.rsplit("/", 1)[1],))
    done = mtlskit_cli(tmp_path / "x", "restore", str(archive), "--database-url", url, "--force")
    assert done.returncode == 0, done.stderr.decode()
    assert _count(url, "SELECT count(*) FROM certificates WHERE status = 'revoked'") == 1


def test_restore_check_reads_the_dump_and_touches_no_database(pg_home, tmp_path, capsys):
    home, url = pg_home
    archive = tmp_path / "pg.tar"
    assert main(["--home", str(home), "backup", str(archive)]) == 0
    capsys.readouterr()
    assert main(["restore", str(archive), "--check"]) == 0
    assert "intact" in capsys.readouterr().out and not (tmp_path / "x").exists()
