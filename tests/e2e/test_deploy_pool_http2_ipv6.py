"""Repeated --upstream makes a pool, --http2 negotiates h2, IPv6 listens (issue 10),
run by the real nginx, apache2 and haproxy with curl as the client."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
import types
from pathlib import Path

import pytest

from mtlskit.deploy import headers as H
from mtlskit.deploy.bundle import deployment_files
from mtlskit.deploy.install import install
from mtlskit.deploy.options import DeployOptions, parse_listen, parse_upstreams, validate
from tests.support_deploy import EchoUpstream, ServerProcess, build_pki, free_port, start_command

pytestmark = pytest.mark.e2e

SERVERS = ["nginx", "apache", "haproxy"]


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


class _Server6(ServerProcess):
    """A server listening on ::1 only: wait for that address, not 127.0.0.1."""

    def _wait_listening(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.argv[0]} exited: {self.log.read_text(errors='replace')[-2000:]}")
            with socket.socket(socket.AF_INET6) as sock:
                if sock.connect_ex(("::1", self.port)) == 0:
                    return
            time.sleep(0.05)
        self.close()
        raise RuntimeError(f"{self.argv[0]} did not listen on [::1]:{self.port}")


@pytest.fixture(scope="module")
def world():
    pki = build_pki()
    base = Path(tempfile.mkdtemp(prefix="mtlskit-pool-"))
    base.chmod(0o755)
    ns = types.SimpleNamespace(pki=pki, base=base, ca=base / "root.pem", alice=pki.write_client(base, "alice"),
                               a=EchoUpstream("a"), b=EchoUpstream("b"))
    ns.ca.write_bytes(pki.root.pem())
    yield ns
    ns.a.close()
    ns.b.close()
    shutil.rmtree(base, ignore_errors=True)


def _deploy(world, server: str, listen: str, upstreams: list[str], http2: bool, tag: str) -> DeployOptions:
    pool = parse_upstreams(upstreams)
    options = validate(DeployOptions(
        server=server, name="localhost", directory=world.base / f"{server}-{tag}", listen=parse_listen(listen),
        upstream=pool[0], upstreams=pool, http2=http2, standalone=True))
    install(options.directory, deployment_files(
        options, world.pki.server.pem() + world.pki.intermediate.pem(), world.pki.server.key_pem(),
        world.pki.ca_certificates, world.pki.crls()))
    return options


@pytest.fixture(scope="module", params=SERVERS)
def pooled(request, world):
    port = free_port()
    options = _deploy(world, request.param, f"127.0.0.1:{port}", [world.a.url, world.b.url], True, "pool")
    process = ServerProcess(start_command(request.param, options.directory), port,
                            world.base / f"{request.param}-pool.log")
    yield types.SimpleNamespace(server=request.param, port=port, options=options)
    process.close()


def curl(world, port: int, *extra: str, cert: bool = True, address: str = "127.0.0.1") -> types.SimpleNamespace:
    """GET https://localhost:PORT/ through ``address``; returns exit code, HTTP version, status, body."""
    argv = ["curl", "-sS", "--max-time", "10", "--cacert", str(world.ca), "-o", "-",
            "-w", "\n%{http_version} %{http_code}", "--connect-to", f"localhost:{port}:{f'[{address}]' if ':' in address else address}:{port}",
            *extra, f"https://localhost:{port}/"]
    if cert:
        argv[1:1] = ["--cert", str(world.alice[0]), "--key", str(world.alice[1])]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    body, _, tail = proc.stdout.rpartition("\n")
    version, _, status = tail.partition(" ")
    return types.SimpleNamespace(code=proc.returncode, version=version, status=int(status or 0), body=body,
                                 err=proc.stderr)


def test_every_member_of_the_pool_receives_requests_with_the_identity(pooled, world):
    seen = []
    for _ in range(6):
        result = curl(world, pooled.port, "--http1.1")
        assert result.status == 200, result
        answer = json.loads(result.body)
        assert [v for k, v in answer["headers"] if k.lower() == H.VERIFY.lower()] == ["SUCCESS"]
        seen.append(answer["upstream"])
    assert set(seen) == {"a", "b"}, seen


def test_http2_is_negotiated_with_a_client_certificate(pooled, world):
    h2 = curl(world, pooled.port, "--http2")
    assert (h2.version, h2.status) == ("2", 200), h2
    assert json.loads(h2.body)["upstream"] in ("a", "b")
    h1 = curl(world, pooled.port, "--http1.1")
    assert h1.version != "2" and h1.status == 200, h1     # haproxy relays the echo's HTTP/1.0


def test_http2_without_a_certificate_is_refused(pooled, world):
    refused = curl(world, pooled.port, "--http2", cert=False)
    if pooled.server == "nginx":
        assert refused.status == 400 and "No required SSL certificate" in refused.body, refused
    else:
        assert refused.code != 0 and refused.status == 0, refused


def test_without_http2_only_http1_is_offered(world):
    port = free_port()
    options = _deploy(world, "nginx", f"127.0.0.1:{port}", [world.a.url], False, "h1")
    process = ServerProcess(start_command("nginx", options.directory), port, world.base / "nginx-h1.log")
    try:
        result = curl(world, port, "--http2")
    finally:
        process.close()
    assert result.version != "2" and result.status == 200, result


def test_the_same_backend_twice_is_refused():
    from mtlskit.errors import UsageError
    with pytest.raises(UsageError, match="given twice"):
        parse_upstreams(["127.0.0.1:8001", "http://127.0.0.1:8001"])
    with pytest.raises(UsageError, match="mixes http and https"):
        pool = parse_upstreams(["127.0.0.1:8001", "https://127.0.0.1:8002"])
        validate(DeployOptions(server="nginx", name="x", directory=Path("/tmp/x"), listen=parse_listen("443"),
                               upstream=pool[0], upstreams=pool))


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="this machine has no IPv6 loopback")
@pytest.mark.parametrize("server", SERVERS)
def test_ipv6_listen_on_loopback(world, server):
    port = free_port()
    options = _deploy(world, server, f"[::1]:{port}", [world.a.url], False, "v6")
    process = _Server6(start_command(server, options.directory), port, world.base / f"{server}-v6.log")
    try:
        ok = curl(world, port, "--http1.1", address="::1")
        refused = curl(world, port, "--http1.1", address="::1", cert=False)
        v4 = curl(world, port, "--http1.1")        # not listening on 127.0.0.1
    finally:
        process.close()
    assert ok.status == 200 and json.loads(ok.body)["upstream"] == "a", ok
    assert refused.status in (0, 400), refused
    assert v4.code == 7, v4                        # curl: could not connect


@pytest.mark.parametrize("server", SERVERS)
def test_cli_repeated_upstream_is_a_pool_never_an_overwrite(ca_home, world, cli, server):
    target = world.base / f"cli-{server}"
    result = cli("--home", ca_home, "deploy", server, "--name", "pool.example.com", "--dir", target,
                 "--listen", "127.0.0.1:8443", "--upstream", "127.0.0.1:8001", "--upstream", "127.0.0.1:8002",
                 "--http2", "--revocation", "none", "--check", "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["upstreams"] == ["http://127.0.0.1:8001", "http://127.0.0.1:8002"] and report["http2"]
    assert report["check"]["ok"]
    site = next(p for p in target.iterdir() if p.name.startswith("mtls") and p.suffix in (".conf", ".cfg"))
    text = site.read_text()
    assert "127.0.0.1:8001" in text and "127.0.0.1:8002" in text
