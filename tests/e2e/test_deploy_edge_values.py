"""Values at the edge of the grammar, accepted and quoted, work on the real servers: a NAME
with '@' and '_', a --dir holding every punctuation character the grammar allows, and a
--route value with a space. `--check` passes, the server reads the files of that
directory (it presents that server.pem), and the route with a space matches."""

from __future__ import annotations

import shutil
import socket
import ssl
import tempfile
import types
from pathlib import Path

import pytest
from cryptography import x509

from mtlskit.cli.app import main
from tests.support_deploy import EchoUpstream, ServerProcess, free_port, get, start_command

pytestmark = pytest.mark.e2e

EDGE_NAME = "edge_1@svc-a.b"
EDGE_DIR = "m@x+y=w~v_1.d-e"
TEAM = "Platform Team"


def _mtlskit(home: Path, *args) -> None:
    assert main(["--home", str(home), *map(str, args)]) == 0, args


@pytest.fixture(scope="module")
def upstreams():
    default, team = EchoUpstream("default"), EchoUpstream("team")
    yield types.SimpleNamespace(default=default, team=team)
    default.close()
    team.close()


@pytest.fixture(scope="module", params=["nginx", "apache", "haproxy"])
def site(request, upstreams):
    base = Path(tempfile.mkdtemp(prefix="mtlskit-edge-"))
    base.chmod(0o755)            # Apache's unprivileged children read the Lua hook
    home, clients, deploy = base / "home", base / "clients", base / EDGE_DIR / "deploy"
    _mtlskit(home, "init", "--no-passphrase")
    _mtlskit(home, "crl")
    port = free_port()
    _mtlskit(home, "deploy", request.param, "--name", EDGE_NAME, "--ip", "127.0.0.1", "--dir", deploy,
             "--listen", f"127.0.0.1:{port}", "--upstream", upstreams.default.url,
             "--route", f"ou={TEAM}:{upstreams.team.url.removeprefix('http://')}", "--standalone", "--check")
    _mtlskit(home, "issue", "client", "alice", "--org-unit", TEAM, "--out", clients / "alice")
    _mtlskit(home, "issue", "client", "bob", "--out", clients / "bob")
    process = ServerProcess(start_command(request.param, deploy), port, base / "stdout.log")
    yield types.SimpleNamespace(port=port, deploy=deploy, ca=clients / "alice" / "ca.pem",
                                cert=lambda n: (clients / n / "fullchain.pem", clients / n / "key.pem"))
    process.close()
    shutil.rmtree(base, ignore_errors=True)


def test_the_server_presents_the_certificate_of_the_edge_directory(site):
    ctx = ssl.create_default_context(cafile=str(site.ca))
    ctx.check_hostname = False
    ctx.load_cert_chain(*map(str, site.cert("bob")))
    with socket.create_connection(("127.0.0.1", site.port), timeout=10) as sock:
        with ctx.wrap_socket(sock) as tls:
            presented = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
    assert presented == x509.load_pem_x509_certificates((site.deploy / "server.pem").read_bytes())[0]


def test_a_route_value_with_a_space_matches(site):
    team = get(site.port, "/", site.ca, site.cert("alice"))
    other = get(site.port, "/", site.ca, site.cert("bob"))
    assert team.status == 200 and team.json()["upstream"] == "team", team
    assert other.status == 200 and other.json()["upstream"] == "default", other
