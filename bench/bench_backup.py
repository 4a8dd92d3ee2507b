"""Benchmark: `mtlskit backup` and `mtlskit restore` of a home with 100,000 certificates.

In a fresh CA home, N certificates (a tenth of them revoked, one `issue` audit event
each, a real certificate's PEM in every row) are inserted in bulk with SQL, as an import
would; `mtlskit crl` publishes the CRL. Then, each as a child process (wall time and peak
RSS): `mtlskit backup FILE`, `mtlskit restore FILE --home NEW`, and the same again with a
real `mtlskit serve` answering from the home while the backup runs. The anchor, in the
same run, is what the guides do by hand: `sqlite3 inventory.db ".backup COPY"` and
`tar cf` of the home with that copy (no manifest, no hashes, no checks).

Usage: python bench/bench_backup.py [--count 100000] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import secrets
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from bench_crl import check, mib, mtlskit, run_measured  # noqa: E402 (bench/ is on the path from here)
from support import ServeProcess  # noqa: E402


def fill(home: Path, count: int, pem: str) -> None:
    """``count`` certificates of the intermediate, every tenth revoked, with their events."""
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    not_before, not_after = now - dt.timedelta(days=10), now + dt.timedelta(days=355)
    rows, events = [], []
    for i in range(count):
        serial = format(secrets.randbits(159) | (1 << 158), "x")
        revoked = i % 10 == 0
        rows.append(("intermediate", serial, f"bulk-{i}", f"CN=bulk-{i}", '["DNS:bulk-%d.test"]' % i, "client",
                     "ec-p256", not_before.isoformat(" "), not_after.isoformat(" "),
                     "revoked" if revoked else "valid", now.isoformat(" ") if revoked else None,
                     "superseded" if revoked else None, secrets.token_hex(32), pem, now.isoformat(" ")))
        events.append((now.isoformat(" "), "issue", "intermediate", serial, '{"name": "bulk-%d"}' % i))
    db = sqlite3.connect(home / "inventory.db")
    db.executemany(
        "INSERT INTO certificates (issuer, serial, name, subject, sans, profile, key_type, not_before,"
        " not_after, status, revoked_at, revocation_reason, fingerprint_sha256, pem, created_at)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    db.executemany("INSERT INTO audit_events (at, action, issuer, serial, detail) VALUES (?,?,?,?,?)", events)
    db.commit()
    db.close()


def measured(what: str, args: list[str]) -> float:
    wall, rss, code, _out, err = run_measured(args)
    check(code, err, what)
    print(f"{what:<44} {wall:6.2f} s  peak RSS {mib(rss)}")
    return wall


def anchor(home: Path, work: Path) -> float:
    """sqlite3's .backup, then tar of the home with the copy: the hand-made backup."""
    copy = work / "anchor.db"
    start = time.perf_counter()
    subprocess.run(["sqlite3", str(home / "inventory.db"), f".backup {copy}"], check=True)
    subprocess.run(["tar", "cf", str(work / "anchor.tar"), "-C", str(home), "ca", "-C", str(work), "anchor.db"],
                   check=True)
    wall = time.perf_counter() - start
    print(f"{'anchor: sqlite3 .backup + tar cf':<44} {wall:6.2f} s")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--workdir", type=Path)
    options = parser.parse_args()
    work = options.workdir or Path(tempfile.mkdtemp(prefix="bench-backup-"))
    work.mkdir(parents=True, exist_ok=True)
    home = work / "home"
    check(*run_measured(mtlskit(home, "init", "--no-passphrase"))[2:5:2], "init")
    check(*run_measured(mtlskit(home, "issue", "client", "carol", "--out", str(work / "carol")))[2:5:2], "issue")
    start = time.perf_counter()
    fill(home, options.count, (work / "carol" / "cert.pem").read_text())
    check(*run_measured(mtlskit(home, "crl", "--out", str(work / "ca.crl")))[2:5:2], "crl")
    size = (home / "inventory.db").stat().st_size
    print(f"== {options.count:,} certificates (setup {time.perf_counter() - start:.1f} s; inventory {mib(size)}) ==")
    backup = measured("mtlskit backup", mtlskit(home, "backup", str(work / "b.tar")))
    print(f"{'':<44} archive {mib((work / 'b.tar').stat().st_size)}")
    restore = measured("mtlskit restore (fresh home)", mtlskit(work / "unused", "restore", str(work / "b.tar"),
                                                               "--home", str(work / "restored")))
    server = ServeProcess(home, "--ocsp-refresh-seconds", "0", log=work / "serve.log")
    try:
        measured("mtlskit backup while serve runs", mtlskit(home, "backup", str(work / "c.tar")))
    finally:
        server.stop()
    hand = anchor(home, work)
    print(f"ratio backup / anchor: {backup / hand:.2f}x  (restore / anchor: {restore / hand:.2f}x)")


if __name__ == "__main__":
    main()
