"""Two `mtlskit serve` replicas on one PostgreSQL behind a real HAProxy (issue 14).

- One replica is killed with ``kill -9`` under OCSP load: no request fails (HAProxy retries
  the ones in flight on the killed replica on the other; at most those may fail).
- A revocation made through replica A (REST API), or by the CLI, is answered ``revoked`` by
  replica B within 1 s, and B serves the newest CRL (from the database, not its files).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from mtlskit.cli.app import main
from tests.support_ocsp import ServeProcess, mtlskit_cli
from tests.support_replicas import Balancer, OcspLoad, ask, free_port

pytestmark = pytest.mark.e2e

NAMES = ("alice", "bob", "carol", "dave")
WITHIN = 1.0   # seconds: every replica answers a revocation made anywhere within this


def _request(out: Path, name: str) -> bytes:
    cert = x509.load_pem_x509_certificate((out / name / "cert.pem").read_bytes())
    issuer = x509.load_pem_x509_certificate((out / name / "chain.pem").read_bytes())
    return ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build().public_bytes(
        serialization.Encoding.DER)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, postgres_server):
    root = tmp_path_factory.mktemp("replicas")
    home, out = root / "home", root / "out"
    url = postgres_server.create_database(with_schema=False)
    assert main(["--database-url", url, "--home", str(home), "init", "--name", "Replica CA", "--no-passphrase"]) == 0
    for name in NAMES:
        assert main(["--home", str(home), "issue", "client", name, "--out", str(out / name)]) == 0
    # both replicas start at once on the shared home and database: one renews the responders
    replicas = [ServeProcess(home, free_port(), "--workers", "1", "--api", log=root / f"serve-{i}.log")
                for i in range(2)]
    balancer = Balancer([r.port for r in replicas]).start(root / "haproxy")
    yield home, out, replicas, balancer, url
    balancer.stop()
    for replica in replicas:
        replica.stop()


def _token_header(home: Path) -> str:
    return f"Authorization: Bearer {(home / 'api-token').read_text().strip()}"


def _revoke_through(replica: ServeProcess, home: Path, name: str) -> dict:
    result = subprocess.run(["curl", "-sS", "-H", _token_header(home), "-H", "Content-Type: application/json",
                             "--data-binary", json.dumps({"targets": [name], "reason": "key-compromise"}),
                             f"{replica.url}/api/v1/revocations"], capture_output=True, timeout=30)
    return json.loads(result.stdout)


def _seconds_until_revoked(url: str, request: bytes, limit: float = 5.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if ask(url, request) == "revoked":
            return time.monotonic() - started
        time.sleep(0.02)
    return float("inf")


def test_a_revocation_through_replica_a_is_answered_by_replica_b_within_a_second(cluster):
    home, out, (a, b), _balancer, _url = cluster
    request = _request(out, "alice")
    assert ask(a.url, request) == ask(b.url, request) == "good"   # both have it cached as good
    answer = _revoke_through(a, home, "alice")
    assert [r["name"] for r in answer["revoked"]] == ["alice"], answer
    assert _seconds_until_revoked(b.url, request) < WITHIN
    assert ask(a.url, request) == "revoked"


def test_a_revocation_by_the_cli_is_answered_by_every_replica_within_a_second(cluster):
    home, out, replicas, _balancer, _url = cluster
    request = _request(out, "bob")
    assert all(ask(r.url, request) == "good" for r in replicas)
    result = mtlskit_cli(home, "revoke", "bob", "--reason", "superseded")
    assert result.returncode == 0, result.stderr.decode()
    assert max(_seconds_until_revoked(r.url, request) for r in replicas) < WITHIN


def test_every_replica_serves_the_newest_crl(cluster):
    home, out, (a, b), _balancer, _url = cluster
    _revoke_through(b, home, "carol")
    serials = {x509.load_pem_x509_certificate((out / "carol" / "cert.pem").read_bytes()).serial_number}
    crls = []
    for replica in (a, b):
        result = subprocess.run(["curl", "-sSf", f"{replica.url}/crl/intermediate.crl"], capture_output=True, timeout=30)
        crls.append(x509.load_der_x509_crl(result.stdout))
    numbers = {crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number for crl in crls}
    assert len(numbers) == 1
    assert all(serials <= {entry.serial_number for entry in crl} for crl in crls)


def test_kill_9_of_a_replica_under_ocsp_load_fails_no_request(cluster, tmp_path):
    home, out, replicas, balancer, _url = cluster
    request = _request(out, "dave")
    assert ask(balancer.url, request) == "good"
    load = OcspLoad(balancer.url, request, seconds=4.0, workers=2).start()
    time.sleep(1.5)   # the load runs on both replicas before one dies
    victim = replicas[1]
    victim.process.kill()   # SIGKILL: no goodbye to HAProxy or PostgreSQL
    victim.process.wait()
    result = load.wait()
    print(f"OCSP through HAProxy, replica killed mid-run: {result.ok} ok, {result.failures}, {result.rate:.0f}/s")
    assert result.ok > 100
    # at most the requests in flight on the killed replica (one per load worker) may fail;
    # HAProxy's retry-on resends them to the other replica, so the target is none
    assert result.failed <= load.workers, (result.failures, result.samples)
    assert result.failed == 0, (result.failures, result.samples)
    assert ask(balancer.url, request) == "good"
    replicas[1] = ServeProcess(home, victim.port, "--workers", "1", "--api", log=tmp_path / "restarted.log")
