"""Benchmark: mtlskit on PostgreSQL next to SQLite, same run, same machine (issue 14).

For each database (SQLite in the home, then PostgreSQL 15 started by the benchmark with
tests/support_postgres.py: initdb in a temporary directory, a free port of 127.0.0.1,
durability as Debian ships it, i.e. fsync on):
  1. a CA home holding ``--count`` certificates (default 1,000,000) of which
     ``--revoked`` (default 10%) are revoked, inserted in bulk with plain SQL (COPY on
     PostgreSQL), as an import would; setup, not measured against a target;
  2. batch issuance: `mtlskit issue client --from FILE` of ``--batch`` new clients as a
     process, end to end: certificates per second;
  3. one revocation end to end: ``POST /api/v1/revocations`` to a running `serve --api`
     (curl's time_total: resolve, one transaction, the CRL re-signed over every revoked
     entry, files written), median of 5; target under 200 ms;
  4. a full CRL: `mtlskit crl` as a process (steady state, entries already encoded);
     target under 5 s;
  5. OCSP throughput (ab -k, keep-alive; GET requests without nonce, answered from the
     pre-signed cache, and with a nonce, signed per request) of one `serve --workers 1`
     replica, then of two replicas on the same database: each loaded by an ab of its own
     (client-side balancing), then through one HAProxy; target: two replicas at least 1.5x
     one. On a 2-core machine the load client and HAProxy share the cores with the
     replicas: what two replicas can add is bounded by the CPU left to the second.

Usage: python bench/bench_postgres.py [--count 1000000] [--revoked 0.1] [--batch 2000]
       [--seconds 5] [--concurrency 16] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from support import ServeProcess, mtlskit_env  # noqa: E402 (bench/ is on the path from here)

REVOKE_RUNS = 5
TARGETS = {"revoke_ms": 200, "crl_s": 5.0, "ocsp_ratio": 1.5}
COLUMNS = ("issuer", "serial", "name", "subject", "sans", "profile", "key_type", "not_before", "not_after",
           "status", "revoked_at", "revocation_reason", "fingerprint_sha256", "pem", "created_at")
REASONS = ["unspecified", "key-compromise", "superseded", "cessation-of-operation", "affiliation-changed"]


def mtlskit(home: Path, *args: str, database_url: str | None = None) -> subprocess.CompletedProcess:
    prefix = ["--database-url", database_url] if database_url else []
    result = subprocess.run([sys.executable, "-m", "mtlskit", *prefix, "--home", str(home), *args],
                            capture_output=True, env=mtlskit_env(), timeout=3600)
    if result.returncode != 0:
        raise SystemExit(f"mtlskit {' '.join(args[:2])} failed: {result.stderr.decode()[-2000:]}")
    return result


def bulk_rows(count: int, revoked_fraction: float, now: dt.datetime):
    rng = random.Random(5280)
    not_before, not_after = now - dt.timedelta(days=100), now + dt.timedelta(days=265)
    for i in range(count):
        revoked = rng.random() < revoked_fraction
        revoked_at = (now - dt.timedelta(seconds=rng.randrange(1, 90 * 86400))).replace(microsecond=0) if revoked else None
        yield ("intermediate", format(rng.getrandbits(159) | (1 << 158), "x"), f"bulk-{i}", f"CN=bulk-{i}", "[]",
               "client", "ec-p256", not_before, not_after, "revoked" if revoked else "valid", revoked_at,
               REASONS[i % len(REASONS)] if revoked else None, secrets.token_hex(32),
               "(bench row: certificate not kept)", now)


def bulk_insert(database_url: str, count: int, revoked_fraction: float) -> float:
    """Insert the rows with plain SQL (sqlite3 executemany, PostgreSQL COPY); seconds."""
    from mtlskit.store.sql import Database, connect_postgresql

    now = dt.datetime.now(dt.timezone.utc)
    start = time.perf_counter()
    if database_url.startswith("sqlite"):
        db = Database.open(database_url)
        with db.transaction() as tx:
            tx.executemany(f"INSERT INTO certificates ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
                           bulk_rows(count, revoked_fraction, now))
        db.close()
    else:
        connection = connect_postgresql(database_url)
        with connection.cursor() as cursor:
            with cursor.copy(f"COPY certificates ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                for row in bulk_rows(count, revoked_fraction, now):
                    copy.write_row(row)
            cursor.execute("VACUUM ANALYZE certificates")   # what autovacuum does after an import
        connection.close()
    return time.perf_counter() - start


def issue_batch(home: Path, work: Path, batch: int) -> float:
    names = work / "batch.txt"
    names.write_text("".join(f"dev-{i:06d}\n" for i in range(batch)))
    start = time.perf_counter()
    mtlskit(home, "issue", "client", "--from", str(names), "--out", str(work / "fleet"), "--json")
    return batch / (time.perf_counter() - start)


def crl_seconds(home: Path, work: Path) -> float:
    mtlskit(home, "crl", "--format", "der", "--out", str(work / "cold.crl"))   # encodes what the import left
    runs = []
    for _ in range(3):
        start = time.perf_counter()
        mtlskit(home, "crl", "--format", "der", "--out", str(work / "ca.crl"))
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def revoke_ms(home: Path, work: Path, names: list[str]) -> float:
    import bench_revoke_api

    result = bench_revoke_api.measure(home, names, work)
    return result["median"] * 1000


def ocsp_request_path(out: Path, name: str, nonce: bool) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509 import ocsp

    cert = x509.load_pem_x509_certificate((out / name / "cert.pem").read_bytes())
    issuer = x509.load_pem_x509_certificate((out / name / "chain.pem").read_bytes())
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1())
    if nonce:
        builder = builder.add_extension(x509.OCSPNonce(secrets.token_bytes(16)), critical=False)
    der = builder.build().public_bytes(serialization.Encoding.DER)
    return "/ocsp/" + urllib.parse.quote(base64.b64encode(der).decode(), safe="")


def ab_run(url: str, seconds: int, concurrency: int) -> subprocess.Popen:
    return subprocess.Popen(["ab", "-q", "-k", "-l", "-s", "10", "-t", str(seconds), "-n", "100000000",
                             "-c", str(concurrency), url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def ab_rate(runs: list[subprocess.Popen]) -> float:
    """The summed requests/s of ab runs going on at once; any failed request fails the bench."""
    total = 0.0
    for run in runs:
        out, err = run.communicate(timeout=600)
        failed = non_2xx = 0
        for line in out.splitlines():
            if line.startswith("Requests per second:"):
                total += float(line.split()[3])
            elif line.startswith("Failed requests:"):
                failed = int(line.split()[2])
            elif line.startswith("Non-2xx responses:"):
                non_2xx = int(line.split()[2])
        if run.returncode != 0 or failed or non_2xx:
            raise SystemExit(f"ab: rc {run.returncode}, {failed} failed, {non_2xx} non-2xx\n{out[-1500:]}{err[-500:]}")
    return total


def ocsp_throughput(home: Path, work: Path, out: Path, seconds: int, concurrency: int, rounds: int) -> dict:
    """OCSP requests/s of one replica and of two (median of ``rounds`` interleaved runs):
    (a) each replica loaded by an ab of its own, ``concurrency`` connections each
    (client-side balancing, DNS round robin), (b) through one HAProxy, twice
    ``concurrency`` connections in all."""
    from tests.support_replicas import Balancer

    replicas = [ServeProcess(home, "--workers", "1", log=work / f"serve-{i}.log") for i in range(2)]
    runs: dict[str, list[float]] = {}
    try:
        for kind, nonce in (("cached", False), ("nonce", True)):
            path = ocsp_request_path(out, "ocsp-client", nonce)
            ab_rate([ab_run(r.url + path, 1, concurrency) for r in replicas])   # warm every replica's cache
            balancers = [Balancer([r.port for r in replicas[:count]]).start(work / f"haproxy-{kind}-{count}")
                         for count in (1, 2)]
            try:
                for _ in range(rounds):
                    for count in (1, 2):
                        runs.setdefault(f"ocsp_{kind}:{count}", []).append(
                            ab_rate([ab_run(r.url + path, seconds, concurrency) for r in replicas[:count]]))
                        runs.setdefault(f"ocsp_{kind}_haproxy:{count}", []).append(
                            ab_rate([ab_run(balancers[count - 1].url + path, seconds, 2 * concurrency)]))
            finally:
                for balancer in balancers:
                    balancer.stop()
    finally:
        for replica in replicas:
            replica.stop()
    keys = {key.split(":")[0] for key in runs}
    return {key: (statistics.median(runs[f"{key}:1"]), statistics.median(runs[f"{key}:2"])) for key in keys}


def bench_database(label: str, database_url: str | None, work: Path, args) -> dict:
    print(f"\n== {label}: {args.count:,} certificates, {args.revoked:.0%} revoked ==", flush=True)
    home, out = work / "home", work / "out"
    mtlskit(home, "init", "--name", "Bench CA", "--no-passphrase", database_url=database_url)
    api_names = [f"api{i}" for i in range(REVOKE_RUNS + 1)]
    mtlskit(home, "issue", "client", "ocsp-client", *api_names, "--out", str(out))
    from mtlskit.config import load_settings

    url = load_settings(home, environ={}).database_url
    setup = bulk_insert(url, args.count, args.revoked)
    print(f"setup: bulk insert of {args.count:,} rows: {setup:.1f} s", flush=True)
    figures = {"crl_s": crl_seconds(home, work)}
    print(f"mtlskit crl (full CRL, {int(args.count * args.revoked):,} entries, steady state): "
          f"{figures['crl_s']:.2f} s", flush=True)
    figures["revoke_ms"] = revoke_ms(home, work, api_names)
    print(f"one revocation end to end (POST /api/v1/revocations, median of {REVOKE_RUNS}): "
          f"{figures['revoke_ms']:.0f} ms", flush=True)
    figures["issue_per_s"] = issue_batch(home, work, args.batch)
    print(f"batch issuance ({args.batch:,} clients, one process): {figures['issue_per_s']:.0f} certificates/s", flush=True)
    figures.update(ocsp_throughput(home, work, out, args.seconds, args.concurrency, args.rounds))
    for key, how in (("ocsp_cached", "cached, direct "), ("ocsp_nonce", "nonce, direct  "),
                     ("ocsp_cached_haproxy", "cached, HAProxy"), ("ocsp_nonce_haproxy", "nonce, HAProxy ")):
        one, two = figures[key]
        print(f"OCSP {how} (ab -k, median of {args.rounds}): one replica {one:7.0f}/s, "
              f"two replicas {two:7.0f}/s: {two / one:.2f}x", flush=True)
    return figures


def report(sqlite: dict, postgres: dict) -> None:
    print("\n== side by side ==")
    rows = [("batch issuance (certificates/s)", "issue_per_s", "{:.0f}"),
            ("one revocation end to end (ms)", "revoke_ms", "{:.0f}"),
            ("full CRL (s)", "crl_s", "{:.2f}")]
    print(f"{'':40} {'SQLite':>12} {'PostgreSQL':>12}")
    for label, key, fmt in rows:
        print(f"{label:40} {fmt.format(sqlite[key]):>12} {fmt.format(postgres[key]):>12}")
    for key in ("ocsp_cached", "ocsp_nonce", "ocsp_cached_haproxy", "ocsp_nonce_haproxy"):
        for figures, name in ((sqlite, "SQLite"), (postgres, "PostgreSQL")):
            one, two = figures[key]
            print(f"{key:20} {name:10}: 1 replica {one:7.0f}/s, 2 replicas {two:7.0f}/s ({two / one:.2f}x)")
    nonce_ratio = postgres["ocsp_nonce"][1] / postgres["ocsp_nonce"][0]
    cached_ratio = postgres["ocsp_cached"][1] / postgres["ocsp_cached"][0]
    print("\ntargets on PostgreSQL: "
          f"revocation {postgres['revoke_ms']:.0f} ms (< {TARGETS['revoke_ms']}: "
          f"{'met' if postgres['revoke_ms'] < TARGETS['revoke_ms'] else 'MISSED'}), "
          f"CRL {postgres['crl_s']:.2f} s (< {TARGETS['crl_s']:g}: {'met' if postgres['crl_s'] < TARGETS['crl_s'] else 'MISSED'}), "
          f"OCSP two replicas / one: nonce {nonce_ratio:.2f}x, cached {cached_ratio:.2f}x "
          f"(>= {TARGETS['ocsp_ratio']}: {'met' if max(nonce_ratio, cached_ratio) >= TARGETS['ocsp_ratio'] else 'MISSED'})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000, help="certificates in the inventory")
    parser.add_argument("--revoked", type=float, default=0.1, help="fraction of them revoked")
    parser.add_argument("--batch", type=int, default=2000, help="clients issued by the batch-issuance run")
    parser.add_argument("--seconds", type=int, default=3, help="duration of each OCSP run (ab -t)")
    parser.add_argument("--concurrency", type=int, default=8, help="ab -c per replica (twice that through HAProxy)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved OCSP runs; each figure is their median")
    parser.add_argument("--workdir", type=Path, help="keep files here instead of a temporary directory")
    args = parser.parse_args()
    for tool in ("ab", "haproxy", "curl"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed (scripts/system-deps.sh)")
    from tests.support_postgres import PostgresServer

    work = args.workdir or Path(tempfile.mkdtemp(prefix="mtlskit-bench-pg-"))
    server = PostgresServer.start(durable=True)
    try:
        sqlite = bench_database("SQLite", None, work / "sqlite", args)
        postgres = bench_database("PostgreSQL 15", server.create_database(with_schema=False), work / "postgres", args)
        report(sqlite, postgres)
        if os.environ.get("MTLSKIT_BENCH_JSON"):
            print(json.dumps({"sqlite": sqlite, "postgresql": postgres}, default=str))
    finally:
        server.close()
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
