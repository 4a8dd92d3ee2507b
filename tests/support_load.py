"""A load client for mTLS servers that counts every failure (reused by e2e tests and bench/).

``LoadRun(spec).start()`` starts ``spec.workers`` processes (``python tests/support_load.py
worker SPEC``; a process each, so the GIL does not cap the rate), each sending
``GET spec.path`` over TLS with a client certificate until ``spec.seconds`` have passed,
then ``.wait()`` sums what they saw into a :class:`LoadResult`.

Every request ends in exactly one bucket: ``ok`` (HTTP 200 whose body holds
``spec.expect``), or a failure kind: ``connect`` (TCP refused/reset before TLS), ``tls``
(handshake failure or alert), ``reset`` (connection reset or closed after the request
was sent), ``status-NNN`` (another HTTP status), ``body`` (200 with a wrong or short body).
A request on a reused keep-alive connection that the server closed before sending a single
byte of the answer is counted under ``closed-idle`` and, as every HTTP client does for an
idempotent request (RFC 9112 section 9.3.1), retried once on a new connection; the retry
ends in its own bucket. ``closed-idle`` is listed apart: it is not a failure a user sees,
but it says the server closed a connection a client was about to use.

The worker uses the standard library only (``ssl`` is OpenSSL, in C): run it with any Python.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import os
import socket
import ssl
import subprocess
import sys
import time

FAILURE_SAMPLES = 5
VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


@dataclasses.dataclass(frozen=True)
class LoadSpec:
    port: int
    ca: str
    cert: str
    key: str
    tls: str = "1.3"                 # "1.2" or "1.3"
    keepalive: bool = True
    seconds: float = 3.0
    workers: int = 4
    per_connection: int = 50         # keep-alive: requests per connection, then a new one
    path: str = "/load"
    expect: str = '"upstream"'       # the body of a good answer contains this
    server_name: str = "localhost"
    host: str = "127.0.0.1"


@dataclasses.dataclass
class LoadResult:
    ok: int
    failures: dict[str, int]
    closed_idle: int
    samples: list[str]
    server_certs: list[bytes]        # DER of every distinct server certificate seen, in order
    seconds: float

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    @property
    def rate(self) -> float:
        return (self.ok + self.failed) / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        kinds = ", ".join(f"{k}={v}" for k, v in sorted(self.failures.items())) or "none"
        return (f"{self.ok} ok, {self.failed} failed ({kinds}), {self.closed_idle} closed-idle retried, "
                f"{self.rate:.0f} req/s; e.g. {self.samples[:3]}")


class LoadRun:
    """The worker processes of one load run (start, then wait)."""

    def __init__(self, spec: LoadSpec) -> None:
        self.spec = spec
        self.procs: list[subprocess.Popen] = []
        self.started = 0.0

    def start(self) -> "LoadRun":
        argv = [sys.executable, os.path.abspath(__file__), "worker", json.dumps(dataclasses.asdict(self.spec))]
        self.started = time.monotonic()
        self.procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                      for _ in range(self.spec.workers)]
        return self

    def wait(self) -> LoadResult:
        reports = []
        for proc in self.procs:
            out, err = proc.communicate(timeout=self.spec.seconds + 60)
            if proc.returncode != 0:
                raise RuntimeError(f"load worker exited with {proc.returncode}: {err.decode()[-1000:]}")
            reports.append(json.loads(out))
        return _merge(reports, time.monotonic() - self.started)

    def run(self) -> LoadResult:
        return self.start().wait()


def _merge(reports: list[dict], seconds: float) -> LoadResult:
    failures: collections.Counter = collections.Counter()
    certs: list[bytes] = []
    for report in reports:
        failures.update(report["failures"])
        for cert in report["certs"]:
            if bytes.fromhex(cert) not in certs:
                certs.append(bytes.fromhex(cert))
    return LoadResult(ok=sum(r["ok"] for r in reports), failures=dict(failures),
                      closed_idle=sum(r["closed_idle"] for r in reports),
                      samples=[s for r in reports for s in r["samples"]], server_certs=certs,
                      seconds=max(seconds, 1e-9))


# --- the worker (one process) ----------------------------------------------------------------

class _Failure(Exception):
    def __init__(self, kind: str, detail: str, before_answer: bool = False) -> None:
        super().__init__(detail)
        self.kind, self.before_answer = kind, before_answer


class _Worker:
    def __init__(self, spec: LoadSpec) -> None:
        self.spec = spec
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.context.minimum_version = self.context.maximum_version = VERSIONS[spec.tls]
        self.context.load_verify_locations(spec.ca)
        self.context.load_cert_chain(spec.cert, spec.key)
        self.request = (f"GET {spec.path} HTTP/1.1\r\nHost: {spec.server_name}\r\n").encode()
        self.expect = spec.expect.encode()
        self.ok = self.closed_idle = 0
        self.failures: collections.Counter = collections.Counter()
        self.samples: list[str] = []
        self.certs: dict[str, None] = {}

    def run(self) -> dict:
        deadline = time.monotonic() + self.spec.seconds
        while time.monotonic() < deadline:
            self._connection(deadline)
        return {"ok": self.ok, "failures": dict(self.failures), "closed_idle": self.closed_idle,
                "samples": self.samples, "certs": list(self.certs)}

    def _connection(self, deadline: float) -> None:
        """One connection: up to per_connection requests (1 without keep-alive)."""
        count = self.spec.per_connection if self.spec.keepalive else 1
        try:
            tls = self._connect()
        except _Failure as failure:
            self._fail(failure)
            return
        try:
            reader = _Reader(tls)
            for index in range(count):
                last = index == count - 1 or time.monotonic() >= deadline
                try:
                    self._exchange(tls, reader, last)
                except _Failure as failure:
                    if failure.before_answer and index > 0:      # a reused connection closed under us
                        self.closed_idle += 1
                        self._retry()
                    else:
                        self._fail(failure)
                    return
                if last:
                    return
        finally:
            tls.close()

    def _retry(self) -> None:
        try:
            tls = self._connect()
        except _Failure as failure:
            self._fail(failure)
            return
        try:
            self._exchange(tls, _Reader(tls), last=True)
        except _Failure as failure:
            self._fail(failure)
        finally:
            tls.close()

    def _connect(self) -> ssl.SSLSocket:
        try:
            sock = socket.create_connection((self.spec.host, self.spec.port), timeout=10)
        except OSError as exc:
            raise _Failure("connect", f"connect: {exc}") from None
        try:
            tls = self.context.wrap_socket(sock, server_hostname=self.spec.server_name)
        except ssl.SSLError as exc:
            sock.close()
            raise _Failure("tls", f"handshake: {exc}") from None
        except OSError as exc:
            sock.close()
            raise _Failure("tls", f"handshake: {type(exc).__name__}: {exc}") from None
        der = tls.getpeercert(binary_form=True)
        self.certs.setdefault(der.hex(), None)
        return tls

    def _exchange(self, tls: ssl.SSLSocket, reader: "_Reader", last: bool) -> None:
        close = b"Connection: close\r\n" if last else b""
        try:
            tls.sendall(self.request + close + b"\r\n")
            status, body = reader.response()
        except _Failure:
            raise
        except ssl.SSLError as exc:
            raise _Failure("tls", f"request: {exc}", before_answer=reader.nothing_read) from None
        except OSError as exc:
            raise _Failure("reset", f"request: {type(exc).__name__}: {exc}",
                           before_answer=reader.nothing_read) from None
        if status != 200:
            raise _Failure(f"status-{status}", f"HTTP {status}: {body[:100]!r}")
        if self.expect not in body:
            raise _Failure("body", f"body without {self.expect!r}: {body[:100]!r}")
        self.ok += 1

    def _fail(self, failure: _Failure) -> None:
        self.failures[failure.kind] += 1
        if len(self.samples) < FAILURE_SAMPLES:
            self.samples.append(str(failure))


class _Reader:
    """HTTP/1.1 responses with a Content-Length, read off one TLS connection."""

    def __init__(self, tls: ssl.SSLSocket) -> None:
        self.tls, self.buffer, self.nothing_read = tls, b"", True

    def _more(self) -> None:
        chunk = self.tls.recv(65536)
        if not chunk:
            raise _Failure("reset", "connection closed before the answer ended",
                           before_answer=self.nothing_read and not self.buffer)
        self.nothing_read = False
        self.buffer += chunk

    def response(self) -> tuple[int, bytes]:
        self.nothing_read = True
        while b"\r\n\r\n" not in self.buffer:
            self._more()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        try:
            status = int(lines[0].split(b" ")[1])
            length = next(int(line.split(b":", 1)[1]) for line in lines[1:]
                          if line.lower().startswith(b"content-length:"))
        except (IndexError, ValueError, StopIteration):
            raise _Failure("body", f"unreadable answer head: {head[:200]!r}") from None
        while len(self.buffer) < length:
            self._more()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return status, body


def served_fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "worker":
    print(json.dumps(_Worker(LoadSpec(**json.loads(sys.argv[2]))).run()))
