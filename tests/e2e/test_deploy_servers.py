"""The generated mTLS configurations, run by the real nginx, apache2 and haproxy.

One server per (program, mode), started on a free 127.0.0.1 port from the standalone
configuration in front of an upstream that echoes the request headers; clients are
parametrised. Every accepted client has its refused ones beside it.
"""

from __future__ import annotations

import hashlib
import http.client
import shutil
import tempfile
import types
import urllib.parse
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from mtlskit.clock import SystemClock
from mtlskit.deploy import headers as H
from mtlskit.deploy.bundle import deployment_files
from mtlskit.deploy.install import install
from mtlskit.deploy.options import DeployOptions, parse_listen, parse_route, parse_upstream, validate
from mtlskit.deploy.records import record_deployment
from mtlskit.deploy.refresh import refresh_deployments
from mtlskit.deploy.render import default_reload
from mtlskit.store.inventory import Inventory
from tests.support_deploy import (
    EchoUpstream, ServerProcess, build_pki, client_context, crl_bundle, free_port, get, resume_get,
    start_command, wait_for,
)

pytestmark = pytest.mark.e2e

SERVERS = ["nginx", "apache", "haproxy"]
FORGED = {**{name: "CN=forged,O=evil" for name in H.IDENTITY_HEADERS},
          **{name.replace("-", "_"): "CN=forged-underscore,O=evil" for name in H.IDENTITY_HEADERS}}

# How each server refuses each bad client with `required` (nginx completes the
# handshake and answers 400; apache and haproxy abort the handshake with an alert).
NGINX_BAD_CERT = b"400 The SSL certificate error"
NGINX_NO_CERT = b"400 No required SSL certificate was sent"
ALERTS = {
    "other-ca": "UNKNOWN_CA",
    "expired": "CERTIFICATE_EXPIRED",
    "revoked": "CERTIFICATE_REVOKED",
    "server-only": "UNSUPPORTED_CERTIFICATE",
    None: "CERTIFICATE_REQUIRED",
}


@pytest.fixture(scope="module")
def pki():
    return build_pki()


@pytest.fixture(scope="module")
def work(pki):
    # Like /etc/apache2: the directory must be readable by the user Apache serves as
    # (mod_lua loads the fingerprint script in the child), which pytest's 0700 tmp is not.
    base = Path(tempfile.mkdtemp(prefix="mtlskit-e2e-"))
    base.chmod(0o755)
    clients = base / "clients"
    clients.mkdir()
    ns = types.SimpleNamespace(base=base, ca=clients / "root.pem",
                               clients={n: pki.write_client(clients, n) for n in pki.clients},
                               default=EchoUpstream("default"), admin=EchoUpstream("admin"),
                               san=EchoUpstream("san"))
    ns.ca.write_bytes(pki.root.pem())
    yield ns
    ns.default.close()
    ns.admin.close()
    ns.san.close()
    shutil.rmtree(base, ignore_errors=True)


def _start(server: str, mode: str, pki, work):
    port = free_port()
    options = validate(DeployOptions(
        server=server, name="localhost", directory=work.base / f"{server}-{mode}",
        listen=parse_listen(f"127.0.0.1:{port}"), upstream=parse_upstream(work.default.url),
        mode=mode, require_on=("/admin",) if mode == "optional" else (),
        routes=(parse_route(f"cn=admin:127.0.0.1:{work.admin.port}"),)
        + ((parse_route(f"san=carol@example.com:127.0.0.1:{work.san.port}"),) if server == "apache" else ()),
        standalone=True))
    install(options.directory, deployment_files(
        options, pki.server.pem() + pki.intermediate.pem(), pki.server.key_pem(),
        pki.ca_certificates, pki.crls()))
    process = ServerProcess(start_command(server, options.directory), port, options.directory / "stdout.log")
    return types.SimpleNamespace(server=server, port=port, options=options, process=process)


@pytest.fixture(scope="module", params=SERVERS)
def required(request, pki, work):
    srv = _start(request.param, "required", pki, work)
    yield srv
    srv.process.close()


@pytest.fixture(scope="module", params=SERVERS)
def optional(request, pki, work):
    srv = _start(request.param, "optional", pki, work)
    yield srv
    srv.process.close()


def _identity_ok(outcome, leaf: x509.Certificate, server: str) -> None:
    assert outcome.status == 200, outcome
    for name, value in H.expected_values(leaf).items():
        assert outcome.header(name) == [value], (server, name)
    [cert] = outcome.header(H.CERT)
    assert x509.load_pem_x509_certificate(urllib.parse.unquote_plus(cert).encode()) == leaf
    assert outcome.header(H.FINGERPRINT_SHA256) == [hashlib.sha256(leaf.public_bytes(Encoding.DER)).hexdigest().upper()]


def _assert_refused(outcome, server: str, client: str | None) -> None:
    """Refused, for the right reason, and the upstream never answered."""
    if server == "nginx":
        assert outcome.status == 400, outcome
        assert (NGINX_NO_CERT if client is None else NGINX_BAD_CERT) in outcome.body
    else:
        assert outcome.status is None, outcome
        assert ALERTS[client] in outcome.tls_error


# --- required --------------------------------------------------------------------------------

def test_required_valid_client_reaches_upstream_with_its_identity(required, pki, work):
    outcome = get(required.port, "/hello", work.ca, work.clients["alice"], headers=FORGED)
    _identity_ok(outcome, pki.clients["alice"].cert, required.server)
    assert outcome.json()["upstream"] == "default"
    # forged underscore spellings never arrive either
    assert not [k for k, _ in outcome.json()["headers"] if "_" in k]


@pytest.mark.parametrize("client", [None, "other-ca", "expired", "revoked", "server-only"])
def test_required_refuses(required, work, client):
    cert = work.clients[client] if client else None
    _assert_refused(get(required.port, "/", work.ca, cert, headers=FORGED), required.server, client)


def test_route_sends_verified_identity_to_its_backend(required, pki, work):
    outcome = get(required.port, "/x", work.ca, work.clients["admin"])
    _identity_ok(outcome, pki.clients["admin"].cert, required.server)
    assert outcome.json()["upstream"] == "admin"


@pytest.mark.parametrize("required", ["apache"], indirect=True)   # nginx, haproxy refuse san=
def test_apache_routes_on_subject_alt_name(required, pki, work):
    outcome = get(required.port, "/", work.ca, work.clients["carol"])
    _identity_ok(outcome, pki.clients["carol"].cert, "apache")
    assert outcome.json()["upstream"] == "san"
    assert get(required.port, "/", work.ca, work.clients["alice"]).json()["upstream"] == "default"


def test_refresh_rewrites_crl_and_reload_refuses_newly_revoked(required, pki, work, tmp_path):
    """The revoke hook: a new CRL bundle reaches the running server with no hand edit."""
    ctx = client_context(work.ca, work.clients["bob"])
    first, session, _ = resume_get(required.port, ctx)
    again, session2, _ = resume_get(required.port, ctx, session)   # TLS 1.3 tickets come late
    assert first.status == again.status == 200
    open_connection = http.client.HTTPSConnection("127.0.0.1", required.port, context=ctx, timeout=10)
    open_connection.request("GET", "/")
    before = open_connection.getresponse()
    assert before.status == 200 and before.read()
    inventory = Inventory.open(f"sqlite:///{tmp_path / 'inv.sqlite3'}")
    record_deployment(inventory, required.options, default_reload(required.options), SystemClock().now())
    service = types.SimpleNamespace(inventory=inventory, clock=SystemClock())
    bundle = crl_bundle(*pki.crls(revoked=["revoked", "bob"], number=2))

    [result] = refresh_deployments(service, bundle)

    assert result.status == "updated", result.message
    if required.server == "haproxy":
        assert "1 revoked serial(s) checked per request" not in result.message    # bob AND mallory
        assert "2 revoked serial(s) checked per request" in result.message
    assert (required.options.directory / "crl.pem").read_bytes() == bundle
    assert wait_for(lambda: get(required.port, "/", work.ca, work.clients["bob"]).status != 200)
    _assert_refused(get(required.port, "/", work.ca, work.clients["bob"]), required.server, "revoked")
    assert get(required.port, "/", work.ca, work.clients["alice"]).status == 200
    # A session from before the revocation does not get bob back in (no resumption).
    resumed, _, reused = resume_get(required.port, ctx, session2 or session)
    _assert_refused(resumed, required.server, "revoked")
    assert not reused
    # Nor does a keep-alive connection opened before it: nginx and apache close it on
    # reload; haproxy keeps it open and refuses by the per-request serial list.
    try:
        open_connection.request("GET", "/")
        response = open_connection.getresponse()
        assert required.server == "haproxy" and response.status == 403, response.status
    except (http.client.RemoteDisconnected, ConnectionError):
        assert required.server != "haproxy"
    finally:
        open_connection.close()


# --- optional + --require-on /admin ----------------------------------------------------------

def test_optional_without_certificate_gets_public_paths_and_no_forged_identity(optional, work):
    outcome = get(optional.port, "/", work.ca, None, headers=FORGED)
    assert outcome.status == 200, outcome
    assert outcome.header(H.VERIFY) == ["NONE"]
    sent = {k.lower() for k, _ in outcome.json()["headers"]}
    assert not sent & {n.lower() for n in FORGED if n != H.VERIFY}


@pytest.mark.parametrize("path", ["/admin", "/admin/users", "//admin", "/%61dmin"])
def test_optional_require_on_refuses_without_certificate(optional, work, path):
    outcome = get(optional.port, path, work.ca, None)
    assert outcome.status == 403, outcome
    assert b"client certificate required" in outcome.body


def test_optional_require_on_admits_verified_client(optional, pki, work):
    """No renegotiation and no post-handshake auth needed: the certificate came with the handshake."""
    outcome = get(optional.port, "/admin", work.ca, work.clients["alice"], headers=FORGED)
    _identity_ok(outcome, pki.clients["alice"].cert, optional.server)


def test_optional_require_on_works_for_post_handshake_auth_clients_too(optional, pki, work):
    """Clients that offer TLS 1.3 post-handshake auth (curl, browsers) get the same answers."""
    admitted = get(optional.port, "/admin", work.ca, work.clients["alice"], post_handshake_auth=True)
    _identity_ok(admitted, pki.clients["alice"].cert, optional.server)
    assert get(optional.port, "/admin", work.ca, None, post_handshake_auth=True).status == 403


@pytest.mark.parametrize("client", ["other-ca", "revoked"])
def test_optional_still_refuses_bad_certificates(optional, work, client):
    _assert_refused(get(optional.port, "/", work.ca, work.clients[client]), optional.server, client)
