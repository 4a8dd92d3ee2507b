"""Benchmark: a /metrics scrape of `mtlskit serve` with 100,000 certificates in the inventory.

Times, on one CA home holding ``--count`` certificates (every leaf profile, the five states
/metrics tells apart, a few deployments):
- the inventory aggregates alone (the GROUP BY of mtlskit/store/metrics.py), and a whole
  scrape's text with the aggregates computed (what a worker does once per
  mtlskit.metrics.inventory.CACHE_SECONDS) and cached, in-process;
- scrapes through a real `mtlskit serve`: the first (the query runs), then cached ones;
- the series count at 1,000 and at ``--count`` certificates (it must not change);
- the OCSP hot path in-process (OcspWire.simple on a kept-alive pre-signed request, what
  `serve` runs per request before writing) with the metrics recorder on and off, interleaved:
  what counting costs per answer, free of the network and of this VM's neighbours.

Prints the median and the slowest of ``--rounds`` runs of each.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from support import REPO, ServeProcess, mtlskit_env

sys.path.insert(0, str(REPO / "src"))

PROFILES = ("server", "client", "peer")
STATES = ("valid", "valid", "valid", "expiring", "expired", "revoked", "superseded")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000, help="certificates in the inventory")
    parser.add_argument("--rounds", type=int, default=7, help="runs of each measurement")
    parser.add_argument("--workdir", type=Path, help="keep files here instead of a temporary directory")
    args = parser.parse_args()
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        return run(args.workdir, args)
    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as work:
        return run(Path(work), args)


def run(work: Path, args) -> int:
    small, large = work / "small", work / "large"
    for home, count in ((small, 1_000), (large, args.count)):
        subprocess.run([sys.executable, "-m", "mtlskit", "--home", str(home), "init", "--name", "Bench Metrics CA",
                        "--no-passphrase"], check=True, env=mtlskit_env(), stdout=subprocess.DEVNULL)
        started = time.perf_counter()
        fill(home, count)
        print(f"setup: {count:,} certificates recorded in {time.perf_counter() - started:.1f} s")
    query, cold, warm = time_in_process(large, args.rounds)
    print(f"\n/metrics benchmark, {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M}Z, {args.count:,} certificates, "
          f"median [slowest] of {args.rounds} runs")
    ms = lambda times: f"{statistics.median(times) * 1e3:.1f} ms [{max(times) * 1e3:.1f}]"
    print(f"  in-process: inventory aggregates (SQL GROUP BY) {ms(query)}; whole scrape, aggregates computed "
          f"{ms(cold)}, cached {ms(warm)}")
    series = {}
    for name, home in (("1,000", small), (f"{args.count:,}", large)):
        server = ServeProcess(home, log=work / "serve.log")
        try:
            first, cached, text = time_scrapes(server.url, args.rounds)
        finally:
            server.stop()
        series[name] = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
        print(f"  scrape through serve, {name} certificates: first (query runs) "
              f"{first * 1e3:.1f} ms, cached {statistics.median(cached) * 1e3:.1f} ms [{max(cached) * 1e3:.1f}]; "
              f"{len(text):,} bytes")
    on, off = time_hot_path(small, work, args.rounds)
    print(f"  OCSP hot path in-process (pre-signed, kept-alive), fastest of {args.rounds} rounds (timeit's rule: "
          f"the others measure the neighbours): metrics on {min(on):.2f} µs, off {min(off):.2f} µs per answer "
          f"(+{min(on) - min(off):.2f} µs)")
    counts = sorted(set(series.values()))
    print(f"  series: {', '.join(f'{n} certificates: {c}' for n, c in series.items())} "
          f"({'the same' if len(counts) == 1 else 'DIFFERENT'})")
    return 0


def fill(home: Path, count: int) -> None:
    """``count`` certificates cycling through the leaf profiles and states, and 20
    deployments (recorded through the store's own methods)."""
    from mtlskit.config import load_settings
    from mtlskit.service import Service
    from mtlskit.store.deployments import DeploymentRow, save_deployment
    from mtlskit.store.inventory import CertificateRecord

    service = Service.open(load_settings(home))
    now = service.clock.now()
    batch = []
    for i in range(count):
        profile, state = PROFILES[i % len(PROFILES)], STATES[i % len(STATES)]
        not_after = {"expiring": now + dt.timedelta(days=10), "expired": now - dt.timedelta(days=3)}.get(
            state, now + dt.timedelta(days=40 + i % 300))
        serial = 1_000_000 + i
        batch.append(CertificateRecord(
            "intermediate", serial, f"bench-{i}", f"CN=bench-{i}", (f"DNS:bench-{i}.example",), profile, "ec-p256",
            now - dt.timedelta(days=100), not_after, hashlib.sha256(b"%d" % serial).hexdigest(),
            "(bench row: certificate not kept)", status="revoked" if state == "revoked" else "valid",
            revoked_at=now if state == "revoked" else None,
            revocation_reason="superseded" if state == "revoked" else None,
            superseded_by=serial + 10**9 if state == "superseded" else None))
        if len(batch) == 10_000:
            service.inventory.add_certificates(batch, now)
            batch = []
    service.inventory.add_certificates(batch, now)
    for index in range(20):
        save_deployment(service.inventory, DeploymentRow("nginx", f"bench-{index * 3}", f"/srv/bench-{index}", "crl",
                                                         None, "{}"), now)


def time_in_process(home: Path, rounds: int) -> tuple[list[float], list[float], list[float]]:
    """Seconds of: the aggregates query; a scrape computing them; a scrape with them cached."""
    import types

    from mtlskit.config import load_settings
    from mtlskit.metrics.inventory import EXPIRING_WITHIN, InventoryGauges
    from mtlskit.metrics.worker import MetricsOptions, WorkerMetrics
    from mtlskit.service import Service
    from mtlskit.store.metrics import inventory_aggregates

    service = Service.open(load_settings(home))
    metrics = WorkerMetrics(MetricsOptions(), service.inventory.db, service.clock, types.SimpleNamespace(cas={}))
    query, cold, warm = [], [], []
    for _ in range(rounds):
        started = time.perf_counter()
        inventory_aggregates(service.inventory.db, service.clock.now(), EXPIRING_WITHIN)
        query.append(time.perf_counter() - started)
        metrics.gauges = InventoryGauges(service.inventory.db, service.clock)
        started = time.perf_counter()
        metrics.scrape()
        cold.append(time.perf_counter() - started)
        started = time.perf_counter()
        metrics.scrape()
        warm.append(time.perf_counter() - started)
    return query, cold, warm


def time_hot_path(home: Path, work: Path, rounds: int, answers: int = 200_000) -> tuple[list[float], list[float]]:
    """µs per OcspWire.simple() answer with the recorder on, and off (rounds interleaved)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509 import ocsp

    from mtlskit.api.http1 import DateHeader
    from mtlskit.api.ocsp_wire import OcspWire
    from mtlskit.api.wiring import build_worker
    from mtlskit.config import load_settings
    from mtlskit.metrics.worker import MetricsOptions
    from mtlskit.service import Service

    subprocess.run([sys.executable, "-m", "mtlskit", "--home", str(home), "issue", "client", "hot-path", "--out",
                    str(work / "hot-path")], check=True, env=mtlskit_env(), stdout=subprocess.DEVNULL)
    service = Service.open(load_settings(home))
    worker = build_worker(service, service.authority(lambda: None), metrics=MetricsOptions())
    cert = x509.load_pem_x509_certificate((work / "hot-path" / "cert.pem").read_bytes())
    issuer = x509.load_pem_x509_certificate((work / "hot-path" / "chain.pem").read_bytes())
    der = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build().public_bytes(Encoding.DER)
    data = (b"POST /ocsp HTTP/1.1\r\nHost: ocsp\r\nContent-Type: application/ocsp-request\r\n"
            b"Content-Length: %d\r\n\r\n" % len(der)) + der
    wires = {True: OcspWire(worker.source, service.clock, DateHeader(), worker.app.metrics.recorder),
             False: OcspWire(worker.source, service.clock, DateHeader(), None)}
    times: dict[bool, list[float]] = {True: [], False: []}
    for round_ in range(rounds):
        for on, wire in sorted(wires.items(), reverse=round_ % 2 == 1):  # alternate which goes first
            wire.simple(data)  # answered once: the pre-signed reply and its memo exist
            simple = wire.simple
            started = time.perf_counter()
            for _ in range(answers):
                simple(data)
            times[on].append((time.perf_counter() - started) / answers * 1e6)
    return times[True], times[False]


def time_scrapes(url: str, rounds: int) -> tuple[float, list[float], str]:
    """The first scrape (a worker's first: the query runs), then ``rounds`` more."""
    times, text = [], ""
    for _ in range(rounds + 1):
        started = time.perf_counter()
        with urllib.request.urlopen(f"{url}/metrics", timeout=60) as response:
            text = response.read().decode()
        times.append(time.perf_counter() - started)
    return times[0], times[1:], text


if __name__ == "__main__":
    sys.exit(main())
