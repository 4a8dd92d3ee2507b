"""`mtlskit backup` of a PostgreSQL home is consistent under writes: pg_dump dumps the
snapshot the manifest's counts were read in. The dump is held back until another process
has issued or revoked (committed) after that snapshot was taken, while a real `serve`
runs on the database; the restored database (another, empty one) is one state."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import psycopg
import pytest

from mtlskit.backup.create import take_backup
from mtlskit.cli.app import main
from mtlskit.config import load_settings
from tests.support_backup import LAST_EVENT, WRITER, consistency_problems, wait_for_writes_after
from tests.support_ocsp import ServeProcess, free_port, mtlskit_env

pytestmark = pytest.mark.e2e


def last_event(url: str) -> int:
    with psycopg.connect(url) as connection:
        return connection.execute(LAST_EVENT).fetchone()[0]


def postgresql_problems(url: str) -> list[str]:
    with psycopg.connect(url) as connection:
        return consistency_problems(lambda sql, params: connection.execute(sql.replace("?", "%s"), params).fetchall())


@pytest.fixture(scope="module")
def busy_pg_home(tmp_path_factory, postgres_server):
    root = tmp_path_factory.mktemp("online-pg")
    home, url = root / "home", postgres_server.create_database(with_schema=False)
    assert main(["--database-url", url, "--home", str(home), "init", "--no-passphrase"]) == 0
    server = ServeProcess(home, free_port(), "--ocsp-refresh-seconds", "0")
    stop = root / "stop"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(home), str(root / "out"), str(stop)],
                              env=mtlskit_env(), stderr=subprocess.PIPE)
    try:
        wait_for_writes_after(lambda: last_event(url), 4)
        yield root, home, url
    finally:
        stop.touch()
        try:
            writer.wait(timeout=60)
        finally:
            server.stop()
    assert writer.returncode == 0, writer.stderr.read().decode()[-2000:]


@pytest.mark.parametrize("round_", range(2))
def test_pg_dump_under_writes_restores_one_consistent_state(busy_pg_home, postgres_server, monkeypatch, round_):
    import mtlskit.store.pgdump as pgdump

    root, home, url = busy_pg_home
    during = {}
    real_run = pgdump._run

    def held(run_url, argv, what, connect=True):
        if what == "pg_dump":     # the snapshot is exported: let the writer commit, then dump
            during["first"] = last_event(url)
            during["seen"] = wait_for_writes_after(lambda: last_event(url), during["first"])
        return real_run(run_url, argv, what, connect)

    monkeypatch.setattr(pgdump, "_run", held)
    archive = root / f"online-{round_}.tar"
    result = take_backup(load_settings(home), archive, dt.datetime.now(dt.timezone.utc))
    assert during["seen"] > during["first"]
    target = postgres_server.create_database(with_schema=False)
    assert main(["restore", str(archive), "--home", str(root / f"restored-{round_}"), "--database-url", target]) == 0
    assert postgresql_problems(target) == []
    assert last_event(target) <= during["first"] < during["seen"]
    with psycopg.connect(target) as connection:
        count = connection.execute("SELECT count(*) FROM certificates").fetchone()[0]
    assert count == result.manifest.inventory["certificates"] >= 3
    postgres_server.drop_database(target)
