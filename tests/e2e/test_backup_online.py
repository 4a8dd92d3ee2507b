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
import time
from pathlib import Path

import pytest
from cryptography import x509

from mtlskit.backup.create import take_backup
from mtlskit.cli.app import main
from mtlskit.config import load_settings
from tests.conftest import on_postgresql
from tests.support_ocsp import ServeProcess, free_port, mtlskit_env

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(on_postgresql(), reason=
                                 "SQLite's backup API under writers (pg_dump: tests/integration/test_backup_postgres.py)")]

WRITER = r"""
import os, sys
from mtlskit.cli.app import main
home, out, stop = sys.argv[1:4]
i = 0
while not os.path.exists(stop):
    assert main(["--home", home, "issue", "client", f"w{i}", "--out", f"{out}/w{i}"]) == 0
    if i % 2:
        assert main(["--home", home, "revoke", f"w{i - 1}", "--reason", "superseded"]) == 0
    i += 1
"""


def last_event(db: Path) -> int:
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return connection.execute("SELECT coalesce(max(id), 0) FROM audit_events").fetchone()[0]
    finally:
        connection.close()


def wait_for_writes_after(db: Path, event_id: int, within: float = 30) -> int:
    deadline = time.monotonic() + within
    while (latest := last_event(db)) <= event_id:
        assert time.monotonic() < deadline, "the writer made no progress"
        time.sleep(0.02)
    return latest


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
        wait_for_writes_after(home / "inventory.db", 4)
        yield root, home
    finally:
        stop.touch()
        try:
            writer.wait(timeout=60)
        finally:
            server.stop()
    assert writer.returncode == 0, writer.stderr.read().decode()[-2000:]


def consistency_problems(db: Path) -> list[str]:
    connection = sqlite3.connect(db)
    problems = []
    if connection.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
        problems.append("integrity_check")
    orphans = connection.execute(
        "SELECT e.id, e.action, e.issuer, e.serial FROM audit_events e WHERE e.serial IS NOT NULL AND NOT EXISTS "
        "(SELECT 1 FROM certificates c WHERE c.issuer = e.issuer AND c.serial = e.serial)").fetchall()
    problems += [f"audit event without its certificate: {row}" for row in orphans]
    silent = connection.execute(
        "SELECT c.serial FROM certificates c WHERE c.status = 'revoked' AND NOT EXISTS (SELECT 1 FROM "
        "audit_events e WHERE e.action = 'revoke' AND e.issuer = c.issuer AND e.serial = c.serial)").fetchall()
    problems += [f"revoked without its event: {row}" for row in silent]
    for issuer, number, der in connection.execute("SELECT issuer, crl_number, der FROM crl_state WHERE der IS NOT NULL"):
        crl = x509.load_der_x509_crl(der)
        if crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number != number:
            problems.append(f"{issuer}: crl_state number {number} is not its CRL's")
        listed = {format(entry.serial_number, "x") for entry in crl}
        revoked = {row[0] for row in connection.execute(
            "SELECT serial FROM certificates WHERE issuer = ? AND status = 'revoked'", (issuer,))}
        if listed != revoked:
            problems.append(f"{issuer}: CRL {number} lists {len(listed)}, the inventory has {len(revoked)} revoked")
    connection.close()
    return problems


@pytest.mark.parametrize("round_", range(3))
def test_backup_under_writes_restores_one_consistent_state(busy_home, monkeypatch, round_):
    root, home = busy_home
    monkeypatch.setattr("mtlskit.store.snapshot.PAGES_PER_STEP", 1)   # many steps, writes between them
    db = home / "inventory.db"
    during = {}

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "database" and "first" not in during:   # hold the copy until the writer commits
            during["first"] = last_event(db)
            during["seen"] = wait_for_writes_after(db, during["first"])

    archive = root / f"online-{round_}.tar"
    result = take_backup(load_settings(home), archive, dt.datetime.now(dt.timezone.utc), progress=progress)
    assert during["seen"] > during["first"]                 # the database changed while it was copied
    target = root / f"restored-{round_}"
    assert main(["restore", str(archive), "--home", str(target)]) == 0
    restored = target / "inventory.db"
    assert consistency_problems(restored) == []
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
