"""Several `mtlskit serve` replicas on one PostgreSQL behind a real HAProxy, and an OCSP
load that counts every failed request (tests/e2e/test_replicas_postgres.py, bench/).

``Balancer(ports).start(directory)`` runs HAProxy on a free port of 127.0.0.1 in HTTP mode,
round robin over the replicas, health-checked every 100 ms (``GET /healthz``), retrying a
request whose replica refused the connection or closed it without answering on another
replica (``retry-on``; OCSP GET is idempotent). Stopped by PID.

``OcspLoad(url, request_der, seconds, workers).run()`` sends ``GET /ocsp/<base64>``
(RFC 6960 Appendix A.1) on keep-alive connections from ``workers`` processes; each answer
is parsed, and only a successful response with the expected status counts as ``ok``.
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import http.client
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

HEALTH_INTERVAL_MS = 100


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def haproxy_config(port: int, replica_ports: list[int]) -> str:
    servers = "\n".join(f"  server r{i} 127.0.0.1:{p} check" for i, p in enumerate(replica_ports))
    return f"""global
  maxconn 2000

defaults
  mode http
  timeout connect 1s
  timeout client 30s
  timeout server 10s
  retries 3
  option redispatch 1
  retry-on conn-failure empty-response response-timeout

frontend ocsp
  bind 127.0.0.1:{port}
  default_backend replicas

backend replicas
  balance roundrobin
  option httpchk GET /healthz
  default-server inter {HEALTH_INTERVAL_MS}ms fastinter {HEALTH_INTERVAL_MS}ms fall 1 rise 2
{servers}
"""


class Balancer:
    """HAProxy in front of the replicas, stopped by PID."""

    def __init__(self, replica_ports: list[int]) -> None:
        self.replica_ports = replica_ports
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self, directory: Path) -> "Balancer":
        directory.mkdir(parents=True, exist_ok=True)
        config = directory / "haproxy.cfg"
        config.write_text(haproxy_config(self.port, self.replica_ports))
        self.log = directory / "haproxy.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(["haproxy", "-f", str(config), "-db"], stdout=log,
                                            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"haproxy exited: {self.log.read_text()[-2000:]}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                connection.request("GET", "/healthz")
                if connection.getresponse().status == 200:
                    connection.close()
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"haproxy did not answer: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def ocsp_get_path(request_der: bytes) -> str:
    return "/ocsp/" + urllib.parse.quote(base64.b64encode(request_der).decode(), safe="")


def ocsp_status_of(body: bytes) -> str:
    """"good", "revoked", "unknown", or the response status when it is not successful."""
    from cryptography.x509 import ocsp

    response = ocsp.load_der_ocsp_response(body)
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        return response.response_status.name.lower()
    return response.certificate_status.name.lower()


def ask(url: str, request_der: bytes, timeout: float = 5) -> str:
    """One OCSP GET to ``url`` (a replica or the balancer): the certificate's status."""
    parsed = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=timeout)
    try:
        connection.request("GET", ocsp_get_path(request_der))
        response = connection.getresponse()
        body = response.read()
        return ocsp_status_of(body) if response.status == 200 else f"http-{response.status}"
    finally:
        connection.close()


@dataclasses.dataclass(frozen=True)
class LoadSpec:
    host: str
    port: int
    path: str
    seconds: float
    expect: str = "good"
    per_connection: int = 100


@dataclasses.dataclass
class LoadResult:
    ok: int
    failures: dict[str, int]
    samples: list[str]
    seconds: float

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0


class OcspLoad:
    """OCSP GETs from ``workers`` processes for ``seconds``; ``start()`` then ``wait()``."""

    def __init__(self, url: str, request_der: bytes, seconds: float, workers: int = 2,
                 expect: str = "good") -> None:
        parsed = urllib.parse.urlsplit(url)
        self.spec = LoadSpec(parsed.hostname, parsed.port, ocsp_get_path(request_der), seconds, expect)
        self.workers = workers
        self.procs: list[subprocess.Popen] = []

    def start(self) -> "OcspLoad":
        argv = [sys.executable, os.path.abspath(__file__), "worker", json.dumps(dataclasses.asdict(self.spec))]
        self.started = time.monotonic()
        self.procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                      for _ in range(self.workers)]
        return self

    def wait(self) -> LoadResult:
        reports = []
        for proc in self.procs:
            out, err = proc.communicate(timeout=self.spec.seconds + 60)
            if proc.returncode != 0:
                raise RuntimeError(f"load worker exited with {proc.returncode}: {err.decode()[-1000:]}")
            reports.append(json.loads(out))
        failures: collections.Counter = collections.Counter()
        for report in reports:
            failures.update(report["failures"])
        return LoadResult(sum(r["ok"] for r in reports), dict(failures),
                          [s for r in reports for s in r["samples"]],
                          max(r["seconds"] for r in reports))

    def run(self) -> LoadResult:
        return self.start().wait()


def _worker(spec: LoadSpec) -> dict:
    ok, failures, samples = 0, collections.Counter(), []
    started = time.monotonic()
    deadline = started + spec.seconds
    while time.monotonic() < deadline:
        connection = http.client.HTTPConnection(spec.host, spec.port, timeout=10)
        try:
            for _ in range(spec.per_connection):
                if time.monotonic() >= deadline:
                    break
                connection.request("GET", spec.path)
                response = connection.getresponse()
                body = response.read()
                kind = ocsp_status_of(body) if response.status == 200 else f"http-{response.status}"
                if kind == spec.expect:
                    ok += 1
                else:
                    failures[kind] += 1
                    if len(samples) < 5:
                        samples.append(f"{kind} after {time.monotonic() - started:.3f}s")
        except (OSError, http.client.HTTPException) as exc:
            failures[type(exc).__name__] += 1
            if len(samples) < 5:
                samples.append(f"{type(exc).__name__}: {exc} after {time.monotonic() - started:.3f}s")
        finally:
            connection.close()
    return {"ok": ok, "failures": dict(failures), "samples": samples, "seconds": time.monotonic() - started}


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "worker":
    print(json.dumps(_worker(LoadSpec(**json.loads(sys.argv[2])))))
