"""Benchmark: the REST API of `mtlskit serve --api` on an inventory of 100,000 certificates.

Times each request from a separate client over one keep-alive connection (server time plus
loopback): list pages (the first, and one deep in the keyset), searches, show, issue with
the key handed over, and the cost of authentication (an API token looked up in the store
on every request, against HOME/api-token compared in memory).

Usage: python bench/bench_api.py [--count 100000] [--runs 21] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from bench_cli import build_home, mtlskit  # noqa: E402
from support import ServeProcess, mtlskit_env  # noqa: E402


def _token(home: Path, name: str, role: str) -> str:
    result = subprocess.run(mtlskit(home, "token", "api", "create", name, "--role", role), env=mtlskit_env(),
                            capture_output=True, text=True, check=True)
    return result.stdout.splitlines()[-1]


class Client:
    def __init__(self, port: int, token: str) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[float, int, dict]:
        start = time.perf_counter()
        self.connection.request(method, "/api/v1" + path, body=json.dumps(body) if body else None,
                                headers=self.headers)
        response = self.connection.getresponse()
        data = response.read()
        return time.perf_counter() - start, response.status, json.loads(data)


def median_ms(client: Client, runs: int, method: str, path: str, body=None, expect: int = 200) -> float:
    times = []
    for n in range(runs):
        wanted = dict(body, name=f"{body['name']}-{n}") if body else None
        seconds, status, data = client.call(method, path, wanted)
        if status != expect:
            raise SystemExit(f"{method} {path}: {status} {data}")
        times.append(seconds)
    return statistics.median(times) * 1000


def deep_cursor(client: Client, pages: int) -> str:
    cursor = None
    for _ in range(pages):
        _, _, data = client.call("GET", "/certificates?limit=100" + (f"&cursor={cursor}" if cursor else ""))
        cursor = data["next_cursor"]
    return cursor


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-api-"))
    home = work / "home"
    if not home.exists():
        build_home(work, args.count, args.count // 10, args.count // 20)
    token = _token(home, f"bench-{int(time.time())}", "admin")
    server = ServeProcess(home, "--api", log=work / "serve.log")
    try:
        file_token = (home / "api-token").read_text().strip()
        client, admin_file = Client(server.port, token), Client(server.port, file_token)
        pages = min(500, args.count // 200)
        cursor = deep_cursor(client, pages)
        shown = f"c{args.count // 8}"
        rows = [
            ("GET /certificates?limit=100 (first page)", median_ms(client, args.runs, "GET", "/certificates?limit=100")),
            (f"GET /certificates?limit=100 (page {pages + 1}, keyset)",
             median_ms(client, args.runs, "GET", f"/certificates?limit=100&cursor={cursor}")),
            ("GET /certificates?expiring=30d&limit=100",
             median_ms(client, args.runs, "GET", "/certificates?expiring=30d&limit=100")),
            ("GET /certificates?status=revoked&limit=100",
             median_ms(client, args.runs, "GET", "/certificates?status=revoked&limit=100")),
            ("GET /certificates?name=c9999*", median_ms(client, args.runs, "GET", "/certificates?name=c9999*")),
            (f"GET /certificates/{shown} (show)", median_ms(client, args.runs, "GET", f"/certificates/{shown}")),
            ("GET /crls, API token (store lookup)", median_ms(client, args.runs, "GET", "/crls")),
            ("GET /crls, HOME/api-token (in memory)", median_ms(admin_file, args.runs, "GET", "/crls")),
            ("POST /certificates (issue, key returned)",
             median_ms(client, args.runs, "POST", "/certificates", {"profile": "client", "name": "bench"}, 201)),
        ]
    finally:
        server.stop()
    print(f"REST API, {args.count:,} certificates, median of {args.runs} (ms, client side, keep-alive):")
    for label, ms in rows:
        print(f"  {label:48s} {ms:8.1f}")


if __name__ == "__main__":
    main()
