"""Benchmark: one revocation through the running service (`mtlskit serve --api`).

The CLI pays ~0.7 s of Python start-up and imports before it revokes anything; the
service has paid it already and holds the CA key. This measures, from a separate client
process (curl, ``-w %{time_total}``), the HTTP request ``POST /api/v1/revocations`` until
its 201 response: resolve, one transaction, CRL re-signed over every revoked entry, CRL
files written, OCSP cache entries dropped. The token goes to curl in a header file
(``-H @file``), never on its command line.

Usage: python bench/bench_revoke_api.py [--count 100000] [--runs 7] [--workdir DIR]
(bench/bench_crl.py calls ``measure`` for each of its sizes, next to the CLI figure.)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "src"))

from support import ServeProcess, mtlskit_env  # noqa: E402 (bench/ is on the path from here)


def _header_file(home: Path, where: Path) -> Path:
    path = where / "auth-header"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(f"Authorization: Bearer {(home / 'api-token').read_text().strip()}\n")
    return path


def _curl_revoke(url: str, headers: Path, name: str) -> float:
    """Seconds from curl's start of the request to the end of the 201 response."""
    body = json.dumps({"targets": [name], "reason": "key-compromise"})
    result = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{time_total}", "-H", f"@{headers}",
         "-H", "Content-Type: application/json", "--data-binary", "@-", f"{url}/api/v1/revocations"],
        input=body.encode(), capture_output=True, timeout=120)
    code, _, total = result.stdout.decode().partition(" ")
    if code != "201":
        raise SystemExit(f"revoke {name} through the API: HTTP {code} {result.stderr.decode()}")
    return float(total)


def measure(home: Path, names: list[str], work: Path) -> dict:
    """Start `serve --api` on ``home``, revoke ``names[0]`` (first request after start,
    reported apart), then each other name once; their times (s)."""
    server = ServeProcess(home, "--api", log=work / "serve-api.log")
    try:
        headers = _header_file(home, work)
        first = _curl_revoke(server.url, headers, names[0])
        times = [_curl_revoke(server.url, headers, name) for name in names[1:]]
    finally:
        server.stop()
        (work / "auth-header").unlink(missing_ok=True)
    return {"first": first, "times": times, "median": statistics.median(times)}


def report(result: dict) -> str:
    times = ", ".join(f"{t * 1000:.0f}" for t in result["times"])
    return (f"POST /api/v1/revocations to `serve --api` (curl time_total, end to end), "
            f"median of {len(result['times'])}: {result['median'] * 1000:6.0f} ms  (runs: {times} ms; "
            f"first request after start: {result['first'] * 1000:.0f} ms)")


def main() -> None:
    import bench_crl

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000, help="certificates already revoked")
    parser.add_argument("--runs", type=int, default=7, help="measured revocations (plus one first request)")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="mtlskit-bench-api-"))
    try:
        home = work / "home"
        names = [f"api{i}" for i in range(args.runs + 1)]
        for command in (["init", "--no-passphrase"], ["issue", "client", *names, "--out", str(work / "out")]):
            subprocess.run(bench_crl.mtlskit(home, *command), check=True, capture_output=True, env=mtlskit_env())
        start = time.perf_counter()
        bench_crl.bulk_revoked(home, args.count, dt.datetime.now(dt.timezone.utc))
        print(f"setup: {args.count:,} revoked rows in {time.perf_counter() - start:.1f} s")
        subprocess.run(bench_crl.mtlskit(home, "crl", "--format", "der", "--out", str(work / "first.crl")),
                       check=True, capture_output=True, env=mtlskit_env())  # entries encoded once, as in service
        result = measure(home, names, work)
        print(f"{args.count:,} already revoked: {report(result)}")
        print(f"check: {bench_crl.verify_crl(home, home / 'crl' / 'intermediate.crl', args.count + len(names))}")
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
