"""Door 5: TLS session resumption never brings a revoked client back, on any server.

A resumed session skips certificate verification, so the only safe answer for an mTLS
listener is: no resumption at all (no session cache, no tickets, no TLS 1.3 PSK). Judged
with `openssl s_client -sess_out/-sess_in` and `-reconnect` against the real servers, at
TLS 1.2 and 1.3, with revocation by CRL (new CRL + reload) and by OCSP (the responder
changes its answer; nothing is reloaded).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import types
from pathlib import Path

import pytest

from mtlskit.clock import SystemClock
from mtlskit.deploy.bundle import deployment_files
from mtlskit.deploy.install import install
from mtlskit.deploy.options import DeployOptions, parse_listen, parse_upstream, validate
from mtlskit.deploy.records import record_deployment
from mtlskit.deploy.refresh import refresh_deployments
from mtlskit.deploy.render import default_reload
from mtlskit.store.inventory import Inventory
from tests.support_deploy import (CLIENT, EchoUpstream, OcspResponder, ServerProcess, build_pki, crl_bundle,
                                  free_port, make_crl, make_leaf, start_command, wait_for)

pytestmark = pytest.mark.e2e

COMBOS = ["nginx-crl", "nginx-ocsp", "apache-crl", "apache-ocsp", "haproxy-crl"]
VERSIONS = ["1.2", "1.3"]
REQUEST = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"


def s_client(port: int, ca: Path, cert: tuple[Path, Path], version: str, *extra: str) -> str:
    """One `openssl s_client` run sending one GET; its stdout (handshake summary + response)."""
    argv = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", str(ca),
            "-cert", str(cert[0]), "-key", str(cert[1]), f"-tls1_{version[-1]}", "-ign_eof", *extra]
    result = subprocess.run(argv, input=REQUEST, capture_output=True, timeout=20)
    return result.stdout.decode(errors="replace")


def admitted(output: str) -> bool:
    return re.search(r"^HTTP/1\.[01] 200 ", output, re.M) is not None


def resumed(output: str) -> bool:
    return "\nReused, " in output


@pytest.fixture(scope="module")
def world():
    pki = build_pki()
    base = Path(tempfile.mkdtemp(prefix="mtlskit-resume-"))
    base.chmod(0o755)
    bobs = {combo: make_leaf(pki.intermediate, f"bob-{combo}", CLIENT) for combo in COMBOS}
    pki.clients.update({f"bob-{combo}": leaf for combo, leaf in bobs.items()})
    responder = OcspResponder(pki.intermediate, [pki.clients["alice"], *bobs.values()], set())
    ns = types.SimpleNamespace(pki=pki, base=base, ca=base / "root.pem", upstream=EchoUpstream("default"),
                               responder=responder, alice=pki.write_client(base, "alice"),
                               bobs={c: pki.write_client(base, f"bob-{c}") for c in COMBOS})
    ns.ca.write_bytes(pki.root.pem())
    yield ns
    ns.upstream.close()
    responder.close()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module", params=COMBOS)
def server(request, world):
    name, revocation = request.param.split("-")
    port = free_port()
    options = validate(DeployOptions(
        server=name, name="localhost", directory=world.base / request.param,
        listen=parse_listen(f"127.0.0.1:{port}"), upstream=parse_upstream(world.upstream.url),
        revocation=revocation, ocsp_url=world.responder.url if revocation == "ocsp" else None,
        standalone=True))
    install(options.directory, deployment_files(
        options, world.pki.server.pem() + world.pki.intermediate.pem(), world.pki.server.key_pem(),
        world.pki.ca_certificates, world.pki.crls() if revocation == "crl" else []))
    process = ServerProcess(start_command(name, options.directory), port, options.directory / "stdout.log")
    yield types.SimpleNamespace(combo=request.param, name=name, revocation=revocation, port=port,
                                options=options)
    process.close()


def _revoke(server, world, tmp_path: Path) -> None:
    leaf = world.pki.clients[f"bob-{server.combo}"]
    if server.revocation == "ocsp":
        world.responder.revoked.add(leaf.cert.serial_number)      # no reload, no file change
        return
    inventory = Inventory.open(f"sqlite:///{tmp_path / 'inv.sqlite3'}")
    record_deployment(inventory, server.options, default_reload(server.options), SystemClock().now())
    pki = world.pki
    bundle = crl_bundle(make_crl(pki.root, [], 2),
                        make_crl(pki.intermediate, [pki.clients["revoked"], leaf], 2))
    [result] = refresh_deployments(types.SimpleNamespace(inventory=inventory, clock=SystemClock()), bundle)
    assert result.status == "updated", result.message


@pytest.mark.parametrize("version", VERSIONS)
def test_no_session_is_ever_resumed(server, world, version, tmp_path):
    session = tmp_path / "alice.sess"
    first = s_client(server.port, world.ca, world.alice, version, "-sess_out", str(session))
    assert admitted(first) and not resumed(first), first
    if session.exists() and session.stat().st_size:
        again = s_client(server.port, world.ca, world.alice, version, "-sess_in", str(session))
        assert admitted(again), again
        assert not resumed(again), again        # a full handshake, certificate checked again


def test_no_session_id_resumption_on_reconnect(server, world):
    # TLS 1.2 only: at 1.3, s_client reconnects before a ticket arrives (-sess_in covers 1.3).
    output = s_client(server.port, world.ca, world.alice, "1.2", "-reconnect")
    assert output.count("\nNew, ") >= 2 and not resumed(output), output


def test_a_session_from_before_the_revocation_does_not_get_the_client_back(server, world, tmp_path):
    bob = world.bobs[server.combo]
    sessions = {v: tmp_path / f"bob-{v}.sess" for v in VERSIONS}
    for version, session in sessions.items():
        assert admitted(s_client(server.port, world.ca, bob, version, "-sess_out", str(session)))
    _revoke(server, world, tmp_path)
    assert wait_for(lambda: not admitted(s_client(server.port, world.ca, bob, "1.3")), timeout=15)
    for version, session in sessions.items():
        extra = ("-sess_in", str(session)) if session.exists() and session.stat().st_size else ()
        output = s_client(server.port, world.ca, bob, version, *extra)
        assert not admitted(output) and not resumed(output), (version, output)
    assert admitted(s_client(server.port, world.ca, world.alice, "1.3"))
