"""/metrics of a real `mtlskit serve --workers 2`: OCSP answers spread over both workers
all counted, a killed worker's counts neither lost nor counted twice, each status counted,
promtool's `check metrics` on a real scrape, the private directory removed at exit."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from cryptography import x509

from mtlskit.cli.app import main
from mtlskit.metrics.recorder import ocsp_tallies
from mtlskit.metrics.slots import read_directory
from tests.support_metrics import samples, value
from tests.support_ocsp import ServeProcess, free_port, mtlskit_cli, request_der

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    home = tmp_path_factory.mktemp("metrics-serve") / "home"
    out = home.parent / "out"
    assert main(["--home", str(home), "init", "--name", "Metrics CA", "--no-passphrase"]) == 0
    for name in ("alice", "bob"):
        assert main(["--home", str(home), "issue", "client", name, "--out", str(out / name)]) == 0
    server = ServeProcess(home, free_port(), "--workers", "2", "--ocsp-refresh-seconds", "0")
    yield home, out, server
    server.stop()


def _request(out: Path, name: str) -> bytes:
    cert = x509.load_pem_x509_certificate((out / name / "cert.pem").read_bytes())
    issuer = x509.load_pem_x509_certificate((out / name / "chain.pem").read_bytes())
    return request_der(cert, issuer)


def _post(server, body: bytes, method: bytes = b"POST") -> bytes:
    """One request on its own connection (so the kernel may hand it to either worker)."""
    head = (b"%s /ocsp HTTP/1.0\r\nContent-Type: application/ocsp-request\r\nContent-Length: %d\r\n\r\n"
            % (method, len(body)))
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head + body)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _scrape(server) -> str:
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=10) as response:
        return response.read().decode()


def _workers(server) -> list[int]:
    pid = server.process.pid
    return [int(c) for c in open(f"/proc/{pid}/task/{pid}/children").read().split()]


def _slot_file(pid: int) -> Path:
    for line in open(f"/proc/{pid}/maps"):
        if line.rstrip().endswith(".slots"):
            return Path(line.split(maxsplit=5)[5].strip())
    raise AssertionError(f"worker {pid} maps no slot file")


def _good_of(path: Path) -> float:
    """The good OCSP answers counted in one worker's file."""
    import mmap

    from mtlskit.metrics.slots import SIZE, _read

    with open(path, "rb") as file, mmap.mmap(file.fileno(), SIZE, access=mmap.ACCESS_READ) as mapped:
        return ocsp_tallies(_read(mapped))[0]["good"]


def _good(server) -> float:
    return value(_scrape(server), "mtlskit_ocsp_responses_total", status="good")


def test_a_scrape_counts_the_answers_of_every_worker(served):
    _home, out, server = served
    body = _request(out, "alice")
    files = {pid: _slot_file(pid) for pid in _workers(server)}
    assert len(files) == 2 and len(set(files.values())) == 2
    before, per_worker_before = _good(server), {pid: _good_of(path) for pid, path in files.items()}
    sent = 0
    while sent < 20 or min(_good_of(p) - per_worker_before[w] for w, p in files.items()) == 0:
        assert b"200 OK" in _post(server, body).split(b"\r\n", 1)[0]
        sent += 1
        assert sent < 5000, "the kernel gave every connection to one worker"
    for _ in range(4):  # whichever worker answers the scrape, it counts both
        assert _good(server) == before + sent


def test_a_killed_worker_is_neither_lost_nor_counted_twice(served):
    _home, out, server = served
    body = _request(out, "alice")
    for _ in range(50):
        _post(server, body)
    total = _good(server)
    victim = max(_workers(server), key=lambda pid: _good_of(_slot_file(pid)))
    victim_file = _slot_file(victim)
    assert _good_of(victim_file) > 0
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while victim in _workers(server) or len(_workers(server)) < 2:
        assert time.monotonic() < deadline, "the supervisor did not replace the killed worker"
        time.sleep(0.05)
    replacement = next(pid for pid in _workers(server) if pid != victim and _slot_file(pid) != victim_file)
    assert _slot_file(replacement) != victim_file
    assert _good(server) == total  # the dead worker's answers still counted, once
    assert not victim_file.exists() and (victim_file.parent / "dead-workers.json").exists()  # folded by that scrape
    for _ in range(30):
        _post(server, body)
    assert _good(server) == total + 30
    assert ocsp_tallies(read_directory(victim_file.parent))[0]["good"] == total + 30


def test_each_ocsp_status_is_counted(served):
    home, out, server = served
    before = _scrape(server)
    bob = _request(out, "bob")
    assert mtlskit_cli(home, "revoke", "bob", "--reason", "keyCompromise").returncode == 0
    _post(server, bob)
    _post(server, b"\x30\x03\x02\x01\x00")  # DER, but not an OCSP request
    _post(server, b"", method=b"PUT")
    after = _scrape(server)
    for status in ("revoked", "malformed_request", "method_not_allowed"):
        assert value(after, "mtlskit_ocsp_responses_total", status=status) == \
            value(before, "mtlskit_ocsp_responses_total", status=status) + 1, status
    count = value(after, "mtlskit_ocsp_response_duration_seconds_count")
    total = sum(value(after, "mtlskit_ocsp_responses_total", status=s) for s in
                ("good", "revoked", "unknown", "malformed_request", "unauthorized", "try_later", "internal_error",
                 "method_not_allowed"))
    assert count == total


def test_promtool_accepts_a_real_scrape(served):
    _home, out, server = served
    _post(server, _request(out, "alice"))
    urllib.request.urlopen(f"{server.url}/crl/root.crl", timeout=10).read()
    text = _scrape(server)
    judged = subprocess.run(["promtool", "check", "metrics"], input=text.encode(), capture_output=True, timeout=30)
    assert judged.returncode == 0, judged.stdout.decode() + judged.stderr.decode()
    assert "mtlskit_ocsp_response_duration_seconds_bucket" in text and 'route="/crl/{filename}"' in text


def test_serve_removes_its_metrics_directory_at_exit_and_no_metrics_makes_none(served):
    home, _out, _server = served
    server = ServeProcess(home, free_port())
    directory = _slot_file(server.process.pid).parent
    assert directory.is_dir() and oct(directory.stat().st_mode & 0o777) == "0o700"
    server.stop()
    assert server.process.returncode == 0 and not directory.exists()
    quiet = ServeProcess(home, free_port(), "--no-metrics")
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            _scrape(quiet)
        assert refused.value.code == 404
        assert not [line for line in open(f"/proc/{quiet.process.pid}/maps") if ".slots" in line]
    finally:
        quiet.stop()


def test_with_a_token_file_metrics_needs_the_bearer_token(served, tmp_path):
    home, _out, _server = served
    token_file = tmp_path / "metrics-token"
    token_file.write_text("m3trics-t0ken\n")
    token_file.chmod(0o600)
    settings = home / "mtlskit.toml"
    original = settings.read_text() if settings.exists() else ""
    settings.write_text(original + f'metrics_token_file = "{token_file}"\n')
    try:
        server = ServeProcess(home, free_port())
    finally:
        settings.write_text(original)
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            _scrape(server)
        assert refused.value.code == 401 and refused.value.headers["content-type"] == "application/problem+json"
        request = urllib.request.Request(f"{server.url}/metrics", headers={"Authorization": "Bearer m3trics-t0ken"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert b"mtlskit_certificates" in response.read()
        assert "m3trics-t0ken" not in server.log.read_text()
    finally:
        server.stop()


def test_requests_refused_before_any_route_count_as_unparsed(served):
    _home, _out, server = served
    before = _scrape(server)
    for request in (b"GARBAGE\r\n\r\n", b"GET /x HTTP/1.1\r\nHost: h\r\nX: " + b"a" * 20000 + b"\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(request)
            assert sock.recv(65536).split(b" ", 2)[1] in (b"400", b"431")
    after = _scrape(server)
    refused = lambda text, code: samples(text).get(
        ("mtlskit_http_requests_total", (("code", code), ("method", "other"), ("route", "unparsed"))), 0.0)
    assert refused(after, "400") == refused(before, "400") + 1
    assert refused(after, "431") == refused(before, "431") + 1
