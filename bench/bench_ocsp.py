"""Benchmark: the OCSP responder of `mtlskit serve` against `openssl ocsp -index ... -port`.

Both responders answer for the same CA with the same delegated responder key (EC P-256)
and the same certificate, in the same run, driven by the same load client: ApacheBench
(`ab`, C, one request per connection like the OCSP clients of openssl and nginx; both
servers also get a keep-alive run where they support it). Requests:
- "no nonce": mtlskit answers from its pre-signed cache (RFC 5019); openssl signs anyway.
- "nonce": a fresh signature per request on both sides (RFC 8954).

`openssl ocsp -port` can only bind every address, so the whole benchmark runs in its own
network namespace (`unshare -n`, loopback only), load client included.

Prints requests/s, p50 and p99 latency at concurrency 1 and 8, the server's CPU time per
request (user + system of the responder's processes, from /proc: the efficiency, which
this VM's scheduling noise moves much less than requests/s), and the ratios against
the targets: no-nonce >= 2x openssl, nonce >= 1x openssl, p99 < 5 ms at concurrency 8.
A last row ("py-floor") times a do-nothing Python server under the same client, the
ceiling of any Python responder when each request opens a new connection.

``--workers 1,2`` times both worker counts in the same run; ``--compare-src DIR`` also
times `mtlskit serve` from another source tree (e.g. a worktree of an older commit), so
before/after figures share one run and its noise. ``--metrics on,off`` (the default) times
`serve` with its metrics (every OCSP answer counted by status, with its latency) and with
`--no-metrics` in the same run, and prints the ratio (target: metrics cost at most 10%).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from support import ServeProcess, free_port, mtlskit_env, stop

NETNS_FLAG = "MTLSKIT_BENCH_IN_NETNS"
TARGETS = {"no nonce": 2.0, "nonce": 1.0}
METRICS_COST_TARGET = 0.90  # requests/s with metrics on / off, at least
NO_METRICS = "nometrics"
P99_TARGET_MS = 5.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=3, help="duration of each run (whole seconds: ab -t)")
    parser.add_argument("--workers", default="1,2", help="mtlskit serve --workers; a comma list times each")
    parser.add_argument("--concurrency", default="1,8", help="ab -c values (comma list)")
    parser.add_argument("--metrics", default="on,off",
                        help="serve with metrics on, off (--no-metrics), or both (on,off: prints the ratio)")
    parser.add_argument("--compare-src", type=Path, help="also time mtlskit from this src/ directory")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions; each row keeps its median")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    parser.add_argument("--workdir", type=Path, help="keep files here instead of a temporary directory")
    args = parser.parse_args()
    args.workers = [int(w) for w in str(args.workers).split(",")]
    args.concurrency = [int(c) for c in str(args.concurrency).split(",")]
    args.metrics = [m.strip() == "on" for m in str(args.metrics).split(",")]
    if os.environ.get(NETNS_FLAG) != "1":
        return _reexec_in_netns()
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    for tool in ("ab", "openssl"):
        if shutil.which(tool) is None:
            print(f"error: {tool} is not installed (apt-get install apache2-utils openssl)", file=sys.stderr)
            return 2
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        return run(args.workdir, args)
    with tempfile.TemporaryDirectory(prefix="bench-ocsp-") as work:
        return run(Path(work), args)


def _reexec_in_netns() -> int:
    if shutil.which("unshare") is None:
        print("error: unshare (util-linux) is needed to isolate `openssl ocsp -port`", file=sys.stderr)
        return 2
    env = {**os.environ, NETNS_FLAG: "1"}
    command = ["unshare", "-n", sys.executable, *sys.argv]
    if os.geteuid() != 0:
        command.insert(1, "-r")  # a user namespace grants the network namespace to non-root users
    return subprocess.run(command, env=env).returncode


def mtlskit(home: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "mtlskit", "--home", str(home), *args], check=True,
                   env=mtlskit_env(), stdout=subprocess.DEVNULL)


def run(work: Path, args) -> int:
    home, client = work / "home", work / "client"
    mtlskit(home, "init", "--name", "Bench OCSP CA", "--no-passphrase")
    mtlskit(home, "issue", "client", "bench-client", "--out", str(client))
    requests = {"no nonce": work / "no-nonce.der", "nonce": work / "nonce.der"}
    for kind, path in requests.items():
        extra = ["-no_nonce"] if kind == "no nonce" else []
        subprocess.run(["openssl", "ocsp", "-issuer", str(client / "chain.pem"), "-cert", str(client / "cert.pem"),
                        "-reqout", str(path), *extra], check=True, capture_output=True)
    suffix = lambda w: f" w{w}" if len(args.workers) > 1 else ""
    configs = [(("mtlskit" if on else NO_METRICS) + suffix(w), w, None, on) for on in args.metrics for w in args.workers]
    if args.compare_src:
        configs += [("before" + suffix(w), w, args.compare_src, True) for w in args.workers]
    processes, urls, pids = [], {}, {}
    try:
        for name, workers, src, on in configs:
            extra = [] if on else ["--no-metrics"]
            server = ServeProcess(home, "--workers", str(workers), *extra, log=work / "serve.log", src=src)
            processes.append(server.process)
            urls[name], pids[name] = f"{server.url}/ocsp", server.pid
            for kind, path in requests.items():
                check_good(urls[name], path, name, kind)
        floor, urls["py-floor"] = start_floor()
        processes.append(floor)
        pids["py-floor"] = floor.pid
        results = measure(urls, pids, lambda: OpensslResponder(home, client, work), requests, args.seconds,
                          args.rounds, args.concurrency)
    finally:
        for process in processes:
            stop(process)
    report(results, args)
    return 0


FLOOR_SERVER = """
import asyncio, socket, sys, uvloop
REPLY = b"HTTP/1.0 200 OK\\r\\nContent-Type: application/ocsp-response\\r\\nContent-Length: 800\\r\\n\\r\\n" + bytes(800)
class Reply(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
    def data_received(self, data):  # answers on the first packet, closes: no parsing at all
        self.transport.write(REPLY)
        self.transport.close()
async def main():
    server = await asyncio.get_running_loop().create_server(Reply, "127.0.0.1", int(sys.argv[1]))
    print("ready", flush=True)
    await server.serve_forever()
uvloop.run(main())
"""


def start_floor() -> tuple[subprocess.Popen, str]:
    """A Python/uvloop server that answers 800 fixed bytes and closes, without reading the
    request: the ceiling of any Python responder when every request opens a connection."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", FLOOR_SERVER, str(port)], stdout=subprocess.PIPE)
    process.stdout.readline()
    return process, f"http://127.0.0.1:{port}/"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` and its children (the forked workers
    of `serve --workers N`), as /proc counts it (proc(5): utime, stime)."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(stat.parent.name) == pid or int(fields[1]) == pid:  # fields[1]: the parent's pid
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


class OpensslResponder:
    """A fresh `openssl ocsp -port` per measurement: when the load client stops, it
    abandons connections, and openssl 3.0's single-threaded responder then spins on one
    of them forever (read() returning 0), so it is never reused across rows."""

    def __init__(self, home: Path, client: Path, work: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.process = start_openssl(home, client, self.port, work)

    def __enter__(self) -> "OpensslResponder":
        return self

    def __exit__(self, *exc) -> None:
        stop(self.process)


def start_openssl(home: Path, client: Path, port: int, work: Path) -> subprocess.Popen:
    """`openssl ocsp` as a responder for the same CA, signing with mtlskit's responder key."""
    from cryptography import x509

    cert = x509.load_pem_x509_certificate((client / "cert.pem").read_bytes())
    expiry = cert.not_valid_after_utc.strftime("%y%m%d%H%M%SZ")
    subject = "/" + "/".join(reversed(cert.subject.rfc4514_string().split(",")))
    index = work / "index.txt"
    index.write_text(f"V\t{expiry}\t\t{cert.serial_number:X}\tunknown\t{subject}\n")
    log = open(work / f"openssl-ocsp-{port}.log", "wb")
    process = subprocess.Popen(
        ["openssl", "ocsp", "-index", str(index), "-port", str(port), "-CA", str(home / "ca" / "intermediate.pem"),
         "-rsigner", str(home / "ocsp" / "intermediate.pem"), "-rkey", str(home / "ocsp" / "intermediate.key.pem"),
         "-nmin", "60", "-ignore_err"], stdout=log, stderr=subprocess.STDOUT)
    # Wait for its banner, not with a probe connection: openssl 3.0's responder spins
    # forever on a connection closed before a request arrives.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if b"waiting for OCSP client connections" in (work / f"openssl-ocsp-{port}.log").read_bytes():
            return process
        time.sleep(0.05)
    process.kill()
    raise SystemExit("openssl ocsp did not start")


def check_good(url: str, request: Path, name: str, kind: str) -> None:
    """Both responders must answer 'good' before they are timed."""
    from cryptography.x509 import ocsp

    post = urllib.request.Request(url, data=request.read_bytes(), headers={"Content-Type": "application/ocsp-request"})
    with urllib.request.urlopen(post, timeout=5) as response:
        parsed = ocsp.load_der_ocsp_response(response.read())
    if parsed.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL or \
            parsed.certificate_status is not ocsp.OCSPCertStatus.GOOD:
        raise SystemExit(f"{name} did not answer 'good' to the {kind} request")


def ab(url: str, body: Path, concurrency: int, seconds: float, keep_alive: bool, csv: Path) -> dict:
    command = ["ab", "-q", "-l", "-s", "5", "-t", str(seconds), "-n", "100000000", "-c", str(concurrency), "-e", str(csv),
               "-p", str(body), "-T", "application/ocsp-request"]
    if keep_alive:
        command.append("-k")
    result = subprocess.run([*command, url], capture_output=True, timeout=seconds * 4 + 30)
    out = result.stdout.decode()
    if result.returncode != 0:
        return {"error": (result.stderr.decode() or out).strip().splitlines()[-1]}
    field = lambda label: next((line.split(":", 1)[1].split()[0] for line in out.splitlines()
                                if line.startswith(label)), "0")
    percentiles = dict(line.split(",") for line in csv.read_text().splitlines()[1:])
    return {"rps": float(field("Requests per second")), "failed": int(field("Non-2xx responses") or 0),
            "requests": int(field("Complete requests")),
            "p50_ms": float(percentiles["50"]), "p99_ms": float(percentiles["99"])}


def measure(urls: dict, pids: dict, openssl_responder, requests: dict, seconds: float, rounds: int,
            concurrency: list[int]) -> list[dict]:
    """Every row on the same client; openssl rows each on a fresh responder. The plan is
    run ``rounds`` times, interleaved, and each row keeps its median run: the machine
    is shared, and a burst of other work should not land on one side of a ratio only."""
    servers = [name for name in urls if name != "py-floor"] + ["openssl"]
    plan = [(server, kind, c, keep_alive) for keep_alive in (False, True) for kind in requests
            for c in concurrency for server in servers]
    plan += [("py-floor", "no nonce", c, False) for c in concurrency]
    runs: dict[tuple, list[dict]] = {key: [] for key in plan}
    for _ in range(rounds):
        for server, kind, concurrency, keep_alive in plan:
            csv = Path(tempfile.mkdtemp()) / "percentiles.csv"
            if server == "openssl":
                with openssl_responder() as responder:
                    check_good(responder.url, requests[kind], "openssl", kind)
                    figures = timed_ab(responder.process.pid, responder.url, requests[kind], concurrency, seconds,
                                       keep_alive, csv)
            else:
                figures = timed_ab(pids[server], urls[server], requests[kind], concurrency, seconds, keep_alive, csv)
            runs[(server, kind, concurrency, keep_alive)].append(figures)
    return [{"server": key[0], "request": key[1], "concurrency": key[2], "keep_alive": key[3],
             "runs": len(found), **_median(found)} for key, found in runs.items()]


def timed_ab(pid: int, *args) -> dict:
    """ab's figures, and the server's CPU time per request (µs) during the run."""
    before = cpu_seconds(pid)
    figures = ab(*args)
    if figures.get("requests"):
        figures["cpu_us"] = (cpu_seconds(pid) - before) / figures["requests"] * 1e6
    return figures


def _median(found: list[dict]) -> dict:
    good = sorted((f for f in found if "rps" in f), key=lambda f: f["rps"])
    if not good:
        return found[-1]
    return {**good[len(good) // 2], "min_rps": good[0]["rps"], "max_rps": good[-1]["rps"]}


def report(results: list[dict], args) -> None:
    print(f"OCSP responder benchmark, {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M}Z, "
          f"{os.cpu_count()} CPUs, mtlskit serve --workers {','.join(map(str, args.workers))}, "
          f"ab for {args.seconds:g}s per run, median of {args.rounds} interleaved runs per row "
          f"[slowest-fastest run]")
    print(f"{'server':13} {'request':9} {'conc':>4} {'keep-alive':>10} {'req/s':>9} {'range':>13} {'p50 ms':>7} "
          f"{'p99 ms':>7} {'cpu µs/req':>10}")
    for r in results:
        if "error" in r:
            print(f"{r['server']:13} {r['request']:9} {r['concurrency']:>4} {str(r['keep_alive']):>10}  error: {r['error']}")
            continue
        spread = f"{r['min_rps']:.0f}-{r['max_rps']:.0f}"
        print(f"{r['server']:13} {r['request']:9} {r['concurrency']:>4} {str(r['keep_alive']):>10} "
              f"{r['rps']:>9.0f} {spread:>13} {r['p50_ms']:>7.2f} {r['p99_ms']:>7.2f} {r.get('cpu_us', 0):>10.0f}")
    ours = [name for name in dict.fromkeys(r["server"] for r in results)
            if name not in ("openssl", "py-floor") and not name.startswith(NO_METRICS)]
    by_key = {(r["server"], r["request"], r["concurrency"], r["keep_alive"]): r for r in results}
    for keep_alive, label in ((False, "one request per connection (openssl and nginx clients do this)"),
                              (True, "keep-alive (ab -k; HTTP caches, curl, CDNs)")):
        for name in ours:
            print(f"\nratios {name} / openssl, {label}:")
            for kind, target in TARGETS.items():
                for concurrency in sorted({r["concurrency"] for r in results}):
                    mine = by_key[(name, kind, concurrency, keep_alive)]
                    theirs = by_key[("openssl", kind, concurrency, keep_alive)]
                    if "rps" not in mine:
                        print(f"  {kind:9} c={concurrency}: {name} failed: {mine['error']}")
                    elif "rps" not in theirs:
                        print(f"  {kind:9} c={concurrency}: openssl failed ({theirs['error']}); {name} {mine['rps']:.0f} req/s")
                    else:
                        ratio = mine["rps"] / theirs["rps"]
                        verdict = "meets" if ratio >= target else "MISSES"
                        cpu = f"; server CPU per request {mine.get('cpu_us', 0):.0f} vs {theirs.get('cpu_us', 0):.0f} µs" \
                            if "cpu_us" in mine and "cpu_us" in theirs else ""
                        print(f"  {kind:9} c={concurrency}: {ratio:5.2f}x  ({verdict} the {target:g}x target){cpu}")
            for kind in TARGETS:
                row = by_key.get((name, kind, 8, keep_alive), {})
                if "p99_ms" in row:
                    verdict = "meets" if row["p99_ms"] < P99_TARGET_MS else "MISSES"
                    print(f"  p99 {kind:9} c=8: {row['p99_ms']:.2f} ms ({verdict} the {P99_TARGET_MS:g} ms target)")
    report_metrics_cost(by_key, results)
    floor = [r for r in results if r["server"] == "py-floor" and "rps" in r]
    if floor:
        print("\npy-floor: a Python/uvloop server that writes 800 fixed bytes and closes without reading the\n"
              "request; no Python responder can pass it when every request opens a new connection.")
    if args.json:
        print(json.dumps(results, indent=2))


def report_metrics_cost(by_key: dict, results: list[dict]) -> None:
    """Requests/s with metrics on / off for each row both were timed on (same run)."""
    pairs = [(name, NO_METRICS + name[len("mtlskit"):]) for name in dict.fromkeys(r["server"] for r in results)
             if name.startswith("mtlskit") and any(r["server"] == NO_METRICS + name[len("mtlskit"):] for r in results)]
    for on, off in pairs:
        print(f"\nmetrics cost: {on} (metrics on) / {off} (--no-metrics), requests/s; server CPU µs/request:")
        ratios = []
        for key, mine in by_key.items():
            theirs = by_key.get((off, *key[1:]))
            if key[0] != on or theirs is None or "rps" not in mine or "rps" not in theirs:
                continue
            ratio = mine["rps"] / theirs["rps"]
            ratios.append(ratio)
            print(f"  {key[1]:9} c={key[2]} keep-alive={str(key[3]):5}: {ratio:5.2f}  "
                  f"({mine['rps']:.0f} vs {theirs['rps']:.0f} req/s; {mine.get('cpu_us', 0):.1f} vs "
                  f"{theirs.get('cpu_us', 0):.1f} µs)")
        if ratios:
            print(f"  requests/s ratio, median: {sorted(ratios)[len(ratios) // 2]:.3f} (moves with the neighbours' load)")
        cpu = [by_key[key]["cpu_us"] / by_key[(off, *key[1:])]["cpu_us"] for key in by_key
               if key[0] == on and by_key[key].get("cpu_us") and by_key.get((off, *key[1:]), {}).get("cpu_us")]
        if cpu:
            # CPU-bound, requests/s is 1 / CPU per request: losing at most 10% of it is at most
            # 1/0.9 as much CPU per request; this VM's neighbours move CPU time far less than requests/s
            median = sorted(cpu)[len(cpu) // 2]
            verdict = "meets" if median <= 1 / METRICS_COST_TARGET else "MISSES"
            print(f"  server CPU per request, on / off, median: {median:.3f} ({verdict} the "
                  f"{1 / METRICS_COST_TARGET:.3f} bound: at most {(1 - METRICS_COST_TARGET) * 100:.0f}% of the "
                  f"throughput lost to metrics)")


if __name__ == "__main__":
    sys.exit(main())
