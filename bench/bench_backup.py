"""Benchmark: `mtlskit backup` and `mtlskit restore` of a home with 100,000 certificates.

In a fresh CA home, N certificates (a tenth of them revoked, one `issue` audit event
each, a real certificate's PEM in every row) are inserted in bulk with SQL, as an import
would; `mtlskit crl` publishes the CRL. Then, each as a child process (wall time and peak
RSS): `mtlskit backup FILE`, `mtlskit restore FILE --home NEW`, and the same again with a
real `mtlskit serve` answering from the home while the backup runs. The anchor, in the
same run, is what the guides do by hand: `sqlite3 inventory.db ".backup COPY"` and
`tar cf` of the home with that copy (no manifest, no hashes, no checks).

The same on PostgreSQL (a server the benchmark starts, tests/support_postgres.py): rows
inserted with COPY, pg_dump/pg_restore, against `pg_dump -Fc` + tar.

Usage: python bench/bench_backup.py [--count 100000] [--workdir DIR] [--database sqlite|postgresql|both]
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


def fill(home: Path, count: int, pem: str, database_url: str | None = None) -> None:
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
    if database_url is not None:
        return _fill_postgresql(database_url, rows, events)
    db = sqlite3.connect(home / "inventory.db")
    db.executemany(
        "INSERT INTO certificates (issuer, serial, name, subject, sans, profile, key_type, not_before,"
        " not_after, status, revoked_at, revocation_reason, fingerprint_sha256, pem, created_at)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    db.executemany("INSERT INTO audit_events (at, action, issuer, serial, detail) VALUES (?,?,?,?,?)", events)
    db.commit()
    db.close()


def _fill_postgresql(url: str, rows: list[tuple], events: list[tuple]) -> None:
    import psycopg

    with psycopg.connect(url) as connection:
        connection.execute("SET TIME ZONE 'UTC'")
        with connection.cursor() as cursor:
            with cursor.copy("COPY certificates (issuer, serial, name, subject, sans, profile, key_type, not_before,"
                             " not_after, status, revoked_at, revocation_reason, fingerprint_sha256, pem, created_at)"
                             " FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            with cursor.copy("COPY audit_events (at, action, issuer, serial, detail) FROM STDIN") as copy:
                for event in events:
                    copy.write_row(event)


def measured(what: str, args: list[str]) -> float:
    wall, rss, code, _out, err = run_measured(args)
    check(code, err, what)
    print(f"{what:<44} {wall:6.2f} s  peak RSS {mib(rss)}")
    return wall


def anchor(home: Path, work: Path, database_url: str | None = None) -> float:
    """The hand-made backup: sqlite3's .backup (or pg_dump -Fc), then tar of the CA
    directory with that copy."""
    copy = work / "anchor.db"
    start = time.perf_counter()
    if database_url is None:
        subprocess.run(["sqlite3", str(home / "inventory.db"), f".backup {copy}"], check=True)
        what = "sqlite3 .backup"
    else:
        from mtlskit.store.pgdump import _tool

        subprocess.run([_tool("pg_dump"), "-Fc", f"--file={copy}", f"--dbname={database_url}"], check=True)
        what = "pg_dump -Fc"
    subprocess.run(["tar", "cf", str(work / "anchor.tar"), "-C", str(home), "ca", "-C", str(work), "anchor.db"],
                   check=True)
    wall = time.perf_counter() - start
    print(f"{'anchor: ' + what + ' + tar cf':<44} {wall:6.2f} s")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    options = parser.parse_args()
    work = options.workdir or Path(tempfile.mkdtemp(prefix="bench-backup-"))
    if options.database in ("sqlite", "both"):
        bench_home(work / "sqlite", options.count, None)
    if options.database in ("postgresql", "both"):
        sys.path.insert(0, str(ROOT))
        from tests.support_postgres import PostgresServer, available

        if not available():
            raise SystemExit("PostgreSQL server binaries are not installed (scripts/system-deps.sh)")
        server = PostgresServer.start()   # stopped by PID in close()
        try:
            bench_home(work / "postgresql", options.count, server)
        finally:
            server.close()


def bench_home(work: Path, count: int, server) -> None:
    work.mkdir(parents=True, exist_ok=True)
    home = work / "home"
    url = server.create_database(with_schema=False) if server is not None else None
    init = ["init", "--no-passphrase"]
    check(*run_measured(mtlskit(home, *init) if url is None else
                        [*mtlskit(home)[:3], "--database-url", url, *mtlskit(home, *init)[3:]])[2:5:2], "init")
    check(*run_measured(mtlskit(home, "issue", "client", "carol", "--out", str(work / "carol")))[2:5:2], "issue")
    start = time.perf_counter()
    fill(home, count, (work / "carol" / "cert.pem").read_text(), url)
    check(*run_measured(mtlskit(home, "crl", "--out", str(work / "ca.crl")))[2:5:2], "crl")
    where = f"inventory {mib((home / 'inventory.db').stat().st_size)}" if url is None else "PostgreSQL"
    print(f"\n== {count:,} certificates, {where} (setup {time.perf_counter() - start:.1f} s) ==")
    backup = measured("mtlskit backup", mtlskit(home, "backup", str(work / "b.tar")))
    print(f"{'':<44} archive {mib((work / 'b.tar').stat().st_size)}")
    into = [] if server is None else ["--database-url", server.create_database(with_schema=False)]
    restore = measured("mtlskit restore (fresh home)", mtlskit(work / "unused", "restore", str(work / "b.tar"),
                                                               "--home", str(work / "restored"), *into))
    serve = ServeProcess(home, "--ocsp-refresh-seconds", "0", log=work / "serve.log")
    try:
        measured("mtlskit backup while serve runs", mtlskit(home, "backup", str(work / "c.tar")))
    finally:
        serve.stop()
    hand = anchor(home, work, url)
    print(f"ratio backup / anchor: {backup / hand:.2f}x  (restore / anchor: {restore / hand:.2f}x)")


if __name__ == "__main__":
    main()
