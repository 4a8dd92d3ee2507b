"""Benchmark: what `deploy nginx --policy` (auth_request to `mtlskit serve` /authz) costs.

Two standalone Nginx deployments of the same CA, written by `mtlskit deploy` in the same
run, in front of the same upstream (a third Nginx answering ``200 ok``): one without a
policy, one with ``--policy`` (every request first asks `mtlskit serve` at /authz).
ApacheBench (`ab`, C) drives both over mTLS with a client certificate (``ab -E``) and
keep-alive (``-k``: the handshakes are the same on both sides and would hide the
subrequest), at each concurrency, interleaved, ``--rounds`` times; each row keeps its
median. Prints requests/s and p50/p99 latency of both, the ratio of requests/s and the
p99 latency the authorisation adds.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from support import ServeProcess, free_port, mtlskit_env, stop

POLICY = '[[rule]]\nname = "bench"\nmatch = { cn = ["bench"] }\npaths = ["/"]\nmethods = ["GET"]\n'
UPSTREAM_CONF = """daemon off;
worker_processes 1;
pid {run}/upstream.pid;
error_log {run}/upstream-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {run}/tmp; proxy_temp_path {run}/tmp; fastcgi_temp_path {run}/tmp;
    uwsgi_temp_path {run}/tmp; scgi_temp_path {run}/tmp;
    server {{ listen 127.0.0.1:{port}; location / {{ return 200 "ok\\n"; }} }}
}}
"""


def mtlskit(home: Path, *args) -> None:
    result = subprocess.run([sys.executable, "-m", "mtlskit", "--home", str(home), *map(str, args)],
                            env=mtlskit_env(), capture_output=True)
    if result.returncode != 0:
        raise SystemExit(f"mtlskit {' '.join(map(str, args))}: {result.stderr.decode()}")


def wait_https(url: str, pem: Path, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = subprocess.run(["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", "--cert", str(pem), url],
                              capture_output=True)
        if done.stdout == b"200":
            return
        time.sleep(0.2)
    raise SystemExit(f"{url} does not answer 200")


def ab(url: str, pem: Path, concurrency: int, seconds: int, csv: Path) -> dict:
    command = ["ab", "-q", "-k", "-s", "5", "-t", str(seconds), "-n", "100000000", "-c", str(concurrency),
               "-E", str(pem), "-e", str(csv), url]
    result = subprocess.run(command, capture_output=True, timeout=seconds * 4 + 30)
    out = result.stdout.decode()
    if result.returncode != 0:
        raise SystemExit(f"ab failed: {(result.stderr.decode() or out).strip()[-500:]}")
    field = lambda label: next((line.split(":", 1)[1].split()[0] for line in out.splitlines()
                                if line.startswith(label)), "0")
    if int(field("Non-2xx responses") or 0) or int(field("Failed requests") or 0):
        raise SystemExit(f"ab saw refusals or failures on {url}:\n{out}")
    percentiles = dict(line.split(",") for line in csv.read_text().splitlines()[1:])
    return {"rps": float(field("Requests per second")), "p50_ms": float(percentiles["50"]),
            "p99_ms": float(percentiles["99"])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=3, help="duration of each ab run")
    parser.add_argument("--concurrency", default="1,8", help="ab -c values (comma list)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions; each row keeps its median")
    parser.add_argument("--workers", type=int, default=1, help="mtlskit serve --workers")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    for tool in ("ab", "nginx", "curl"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (scripts/system-deps.sh)")
    base = Path(tempfile.mkdtemp(prefix="mtlskit-bench-authz-"))
    base.chmod(0o755)     # nginx workers (nobody when started as root) use the temp directories
    processes: list = []
    try:
        rows = run(base, args, processes)
    finally:
        for process in reversed(processes):
            process.stop() if hasattr(process, "stop") else stop(process)
        shutil.rmtree(base, ignore_errors=True)
    report(rows, args)
    return 0


def run(base: Path, args, processes: list) -> list[dict]:
    home, run_dir = base / "home", base / "upstream"
    (run_dir / "tmp").mkdir(parents=True)
    mtlskit(home, "init", "--name", "Bench Authz CA", "--no-passphrase")
    mtlskit(home, "issue", "client", "bench", "--out", base / "bench")
    pem = base / "bench.pem"      # ab -E: the certificate chain and the key in one file
    pem.write_bytes((base / "bench" / "fullchain.pem").read_bytes() + (base / "bench" / "key.pem").read_bytes())
    (base / "policy.toml").write_text(POLICY)
    upstream_port = free_port()
    (run_dir / "nginx.conf").write_text(UPSTREAM_CONF.format(run=run_dir, port=upstream_port))
    processes.append(subprocess.Popen(["nginx", "-p", str(run_dir), "-c", str(run_dir / "nginx.conf")],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    serve = ServeProcess(home, "--workers", str(args.workers), log=base / "serve.log")
    processes.append(serve)
    urls = {}
    for label, extra in (("plain", ()), ("authz", ("--policy", base / "policy.toml", "--authz-url", serve.url))):
        port = free_port()
        directory = base / label
        mtlskit(home, "deploy", "nginx", "--name", "localhost", "--dir", directory, "--listen", f"127.0.0.1:{port}",
                "--upstream", f"http://127.0.0.1:{upstream_port}", "--standalone", *extra)
        processes.append(subprocess.Popen(["nginx", "-p", str(directory), "-c", str(directory / "nginx.conf")],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        urls[label] = f"https://127.0.0.1:{port}/bench"
        wait_https(urls[label], pem)
    return measure(urls, pem, args, base)


def measure(urls: dict, pem: Path, args, base: Path) -> list[dict]:
    concurrency = [int(c) for c in args.concurrency.split(",")]
    runs: dict[tuple[int, str], list[dict]] = {}
    for _ in range(args.rounds):
        for c in concurrency:
            for label, url in urls.items():
                runs.setdefault((c, label), []).append(ab(url, pem, c, args.seconds, base / "percentiles.csv"))
    rows = []
    for c in concurrency:
        row = {"concurrency": c}
        for label in urls:
            for key in ("rps", "p50_ms", "p99_ms"):
                row[f"{label}_{key}"] = statistics.median(r[key] for r in runs[(c, label)])
        row["rps_ratio"] = row["authz_rps"] / row["plain_rps"]
        row["added_p99_ms"] = row["authz_p99_ms"] - row["plain_p99_ms"]
        rows.append(row)
    return rows


def report(rows: list[dict], args) -> None:
    print(f"nginx mTLS, keep-alive, ab -E (client certificate), {args.seconds}s x {args.rounds} rounds (median); "
          f"mtlskit serve --workers {args.workers}")
    print(f"{'c':>3} {'plain req/s':>12} {'authz req/s':>12} {'ratio':>6} {'p50 plain':>10} {'p50 authz':>10} "
          f"{'p99 plain':>10} {'p99 authz':>10} {'added p99':>10}")
    for r in rows:
        print(f"{r['concurrency']:>3} {r['plain_rps']:>12.0f} {r['authz_rps']:>12.0f} {r['rps_ratio']:>6.2f} "
              f"{r['plain_p50_ms']:>8.2f}ms {r['authz_p50_ms']:>8.2f}ms {r['plain_p99_ms']:>8.2f}ms "
              f"{r['authz_p99_ms']:>8.2f}ms {r['added_p99_ms']:>8.2f}ms")
    if args.json:
        print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    sys.exit(main())
