"""`mtlskit backup` is online and consistent: copies are taken while another process issues
and revokes in a loop and a real `serve` has the database open, with the copy stepped a
page at a time and held until the writer has committed meanwhile. Each restored copy is
one state of the inventory: integrity_check ok, every audit event's certificate exists,
every revoked certificate has its event, and each CRL in it carries the CRL number
recorded beside it and lists exactly that issuer's revoked certificates."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from mtlskit.backup.create import take_backup
from mtlskit.cli.app import main
from mtlskit.config import load_settings
from tests.conftest import on_postgresql
from tests.support_backup import LAST_EVENT, WRITER, consistency_problems, wait_for_writes_after
from tests.support_ocsp import ServeProcess, free_port, mtlskit_env

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(on_postgresql(), reason=
                                 "SQLite's backup API under writers (pg_dump: tests/integration/test_backup_postgres.py)")]

def last_event(db: Path) -> int:
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return connection.execute(LAST_EVENT).fetchone()[0]
    finally:
        connection.close()


@pytest.fixture(scope="module")
def busy_home(tmp_path_factory):
    root = tmp_path_factory.mktemp("online")
    home = root / "home"
    assert main(["--home", str(home), "init", "--no-passphrase"]) == 0
    server = ServeProcess(home, free_port(), "--ocsp-refresh-seconds", "0")
    stop = root / "stop"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(home), str(root / "out"), str(stop)],
                              env=mtlskit_env(), stderr=subprocess.PIPE)
    try:
        wait_for_writes_after(lambda: last_event(home / "inventory.db"), 4)
        yield root, home
    finally:
        stop.touch()
        try:
            writer.wait(timeout=60)
        finally:
            server.stop()
    assert writer.returncode == 0, writer.stderr.read().decode()[-2000:]


def sqlite_problems(db: Path) -> list[str]:
    connection = sqlite3.connect(db)
    try:
        integrity = connection.execute("PRAGMA integrity_check").fetchone()[0]
        problems = consistency_problems(lambda sql, params: connection.execute(sql, params).fetchall())
        return problems if integrity == "ok" else [f"integrity_check: {integrity}", *problems]
    finally:
        connection.close()


@pytest.mark.parametrize("round_", range(3))
def test_backup_under_writes_restores_one_consistent_state(busy_home, monkeypatch, round_):
    root, home = busy_home
    monkeypatch.setattr("mtlskit.store.snapshot.PAGES_PER_STEP", 1)   # many steps, writes between them
    db = home / "inventory.db"
    during = {}

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "database" and "first" not in during:   # hold the copy until the writer commits
            during["first"] = last_event(db)
            during["seen"] = wait_for_writes_after(lambda: last_event(db), during["first"])

    archive = root / f"online-{round_}.tar"
    result = take_backup(load_settings(home), archive, dt.datetime.now(dt.timezone.utc), progress=progress)
    assert during["seen"] > during["first"]                 # the database changed while it was copied
    target = root / f"restored-{round_}"
    assert main(["restore", str(archive), "--home", str(target)]) == 0
    restored = target / "inventory.db"
    assert sqlite_problems(restored) == []
    copied_events = sqlite3.connect(restored).execute("SELECT max(id) FROM audit_events").fetchone()[0]
    assert copied_events <= during["first"] < during["seen"]   # the state when the copy began, not later
    assert result.manifest.inventory["certificates"] == sqlite3.connect(restored).execute(
        "SELECT count(*) FROM certificates").fetchone()[0]
    assert json.loads(main_json(target))["certificates"] >= 3


def main_json(home: Path) -> str:
    listing = subprocess.run([sys.executable, "-m", "mtlskit", "--home", str(home), "list", "--json"],
                             capture_output=True, env=mtlskit_env(), timeout=60)
    assert listing.returncode == 0, listing.stderr.decode()
    return json.dumps({"certificates": len(json.loads(listing.stdout))})
