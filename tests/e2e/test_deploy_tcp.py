"""`--upstream tcp://HOST:PORT`: mTLS in front of a TCP service (issue 10), nginx stream {}
and HAProxy mode tcp, with the HTTP client matrix at TLS 1.2 and 1.3: a valid client's
bytes reach the service; revoked, expired, wrong-CA, wrong-EKU and certificate-less
clients are refused for the right reason and the service never sees a byte."""

from __future__ import annotations

import shutil
import socket
import socketserver
import ssl
import tempfile
import threading
import types
from pathlib import Path

import pytest

from mtlskit.deploy.bundle import deployment_files
from mtlskit.deploy.install import install
from mtlskit.deploy.options import DeployOptions, parse_listen, parse_upstreams, validate
from mtlskit.errors import UsageError
from tests.support_deploy import ServerProcess, build_pki, free_port, start_command, wait_for

pytestmark = pytest.mark.e2e

VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
# client -> (nginx's logged verify error, the alert haproxy sends)
REFUSALS = {
    None: ("client sent no required SSL certificate", "CERTIFICATE_REQUIRED"),
    "revoked": ("certificate revoked", "CERTIFICATE_REVOKED"),
    "expired": ("certificate has expired", "CERTIFICATE_EXPIRED"),
    "other-ca": ("(21:unable to verify the first certificate)", "UNKNOWN_CA"),
    "server-only": ("(26:unsuitable certificate purpose)", "UNSUPPORTED_CERTIFICATE"),
}


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.server.connections += 1
        while data := self.request.recv(4096):
            self.request.sendall(data)


class TcpEcho:
    def __init__(self) -> None:
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
        self.server.daemon_threads = True
        self.server.connections = 0
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def world():
    pki = build_pki()
    base = Path(tempfile.mkdtemp(prefix="mtlskit-tcp-"))
    base.chmod(0o755)
    ns = types.SimpleNamespace(pki=pki, base=base, ca=base / "root.pem", echo=TcpEcho(),
                               clients={n: pki.write_client(base, n) for n in pki.clients})
    ns.ca.write_bytes(pki.root.pem())
    yield ns
    ns.echo.close()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module", params=["nginx", "haproxy"])
def proxy(request, world):
    port = free_port()
    pool = parse_upstreams([f"tcp://127.0.0.1:{world.echo.port}"])
    options = validate(DeployOptions(
        server=request.param, name="localhost", directory=world.base / request.param,
        listen=parse_listen(f"127.0.0.1:{port}"), upstream=pool[0], upstreams=pool, standalone=True))
    install(options.directory, deployment_files(
        options, world.pki.server.pem() + world.pki.intermediate.pem(), world.pki.server.key_pem(),
        world.pki.ca_certificates, world.pki.crls()))
    process = ServerProcess(start_command(request.param, options.directory), port,
                            world.base / f"{request.param}.log")
    yield types.SimpleNamespace(server=request.param, port=port, options=options)
    process.close()


def exchange(port: int, world, client: str | None, version: str) -> tuple[bytes, str | None]:
    """Connect with ``client``'s certificate, send a line, return (echoed bytes, TLS error)."""
    ctx = ssl.create_default_context(cafile=str(world.ca))
    ctx.check_hostname = False
    ctx.minimum_version = ctx.maximum_version = VERSIONS[version]
    if client:
        ctx.load_cert_chain(*map(str, world.clients[client]))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with ctx.wrap_socket(raw) as tls:
                tls.sendall(b"ping\n")
                return tls.recv(100), None
    except (ssl.SSLError, ConnectionError) as exc:
        return b"", f"{type(exc).__name__}: {exc}"


@pytest.mark.parametrize("version", list(VERSIONS))
def test_valid_client_reaches_the_tcp_service(proxy, world, version):
    assert exchange(proxy.port, world, "alice", version) == (b"ping\n", None)


@pytest.mark.parametrize("version", list(VERSIONS))
@pytest.mark.parametrize("client", list(REFUSALS))
def test_bad_clients_are_refused_before_the_service(proxy, world, client, version):
    log = proxy.options.directory / "error.log"
    seen = log.read_text() if log.exists() else ""
    before = world.echo.server.connections
    echoed, error = exchange(proxy.port, world, client, version)
    assert echoed == b""
    reason, alert = REFUSALS[client]
    if client is None and version == "1.2":
        alert = "HANDSHAKE_FAILURE"          # TLS 1.2 has no certificate_required alert (RFC 8446 6.2)
    if proxy.server == "haproxy":
        assert error is not None and alert in error, error
    else:    # nginx closes the connection after the handshake and logs why
        assert wait_for(lambda: reason in log.read_text()[len(seen):], timeout=5, times=1), log.read_text()[-500:]
    assert world.echo.server.connections == before


def test_apache_and_http_only_options_are_refused_in_one_line():
    pool = parse_upstreams(["tcp://127.0.0.1:5432"])
    base = dict(name="db", directory=Path("/tmp/x"), listen=parse_listen("8443"), upstream=pool[0], upstreams=pool)
    with pytest.raises(UsageError, match="^apache cannot put mTLS in front of a TCP service$"):
        validate(DeployOptions(server="apache", **base))
    for extra, flag in [({"http2": True}, "--http2"), ({"mode": "optional"}, "--mode optional")]:
        with pytest.raises(UsageError, match=f"^{flag} does not apply to a tcp:// upstream"):
            validate(DeployOptions(server="nginx", **base, **extra))
    with pytest.raises(UsageError, match="mixes http and tcp"):
        mixed = parse_upstreams(["tcp://127.0.0.1:5432", "127.0.0.1:80"])
        validate(DeployOptions(server="haproxy", **{**base, "upstream": mixed[0], "upstreams": mixed}))
    for bad in ("tcp://127.0.0.1", "tcp://127.0.0.1:5432/x", "tcp://u:p@127.0.0.1:5432", "tcp://bad host:1"):
        with pytest.raises(UsageError):
            parse_upstreams([bad])


def test_cli_refuses_apache_tcp_with_exit_2_and_writes_nothing(ca_home, tmp_path, cli):
    result = cli("--home", ca_home, "deploy", "apache", "--name", "db.example.com", "--dir", tmp_path / "a",
                 "--listen", "8443", "--upstream", "tcp://127.0.0.1:5432", "--revocation", "none")
    assert result.code == 2
    assert result.err.splitlines()[0] == "error: apache cannot put mTLS in front of a TCP service"
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("server", ["nginx", "haproxy"])
def test_cli_tcp_deploy_passes_the_servers_check(ca_home, world, cli, server):
    result = cli("--home", ca_home, "deploy", server, "--name", "db.example.com", "--dir", world.base / f"c-{server}",
                 "--listen", "127.0.0.1:8443", "--upstream", "tcp://127.0.0.1:5432",
                 "--upstream", "tcp://127.0.0.1:5433", "--revocation", "none", "--check")
    assert result.code == 0, result.err
    assert "check: ok" in result.out


def test_revocation_reaches_the_running_tcp_proxy(proxy, world, tmp_path):
    """`mtlskit revoke`'s hook (refresh_deployments) works for a TCP deployment too."""
    from mtlskit.clock import SystemClock
    from mtlskit.deploy.records import record_deployment
    from mtlskit.deploy.refresh import refresh_deployments
    from mtlskit.deploy.render import default_reload
    from mtlskit.store.inventory import Inventory
    from tests.support_deploy import crl_bundle

    assert exchange(proxy.port, world, "bob", "1.3") == (b"ping\n", None)
    inventory = Inventory.open(f"sqlite:///{tmp_path / 'inv.sqlite3'}")
    record_deployment(inventory, proxy.options, default_reload(proxy.options), SystemClock().now())
    service = types.SimpleNamespace(inventory=inventory, clock=SystemClock())
    try:
        [result] = refresh_deployments(service, crl_bundle(*world.pki.crls(revoked=["revoked", "bob"], number=2)))
        assert result.status == "updated", result.message
        assert wait_for(lambda: exchange(proxy.port, world, "bob", "1.3")[0] == b"")
        assert exchange(proxy.port, world, "alice", "1.3") == (b"ping\n", None)
    finally:     # later tests of this module expect the first CRL
        refresh_deployments(service, crl_bundle(*world.pki.crls(number=3)))
