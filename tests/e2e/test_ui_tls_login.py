"""`mtlskit serve --ui --tls-port`: a client certificate of the CA with a role in [roles]
opens a session directly (a Secure cookie), one without a role or revoked does not."""

from __future__ import annotations

import http.client
import ssl
from pathlib import Path

import pytest

from tests.support_ocsp import ServeProcess, free_port, mtlskit_cli

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("ui-tls")
    home = root / "home"
    assert mtlskit_cli(home, "init", "--name", "UI TLS CA", "--no-passphrase").returncode == 0
    with open(home / "mtlskit.toml", "a") as config:
        config.write('\n[roles]\nadmin = ["alice", "frank"]\nread = ["carol"]\n')
    for name in ("alice", "bob", "carol", "dave", "frank"):
        assert mtlskit_cli(home, "issue", "client", name, "--out", str(root / name)).returncode == 0
    assert mtlskit_cli(home, "revoke", "dave").returncode == 0
    tls_port = free_port()
    server = ServeProcess(home, free_port(), "--tls-port", str(tls_port), "--ui")
    yield root, home, tls_port
    server.stop()


def _get(home: Path, port: int, path: str, client: Path | None, cookie: str | None = None) -> http.client.HTTPResponse:
    context = ssl.create_default_context(cadata=(home / "ca" / "root.pem").read_text())
    if client is not None:
        context.load_cert_chain(client / "fullchain.pem", client / "key.pem")
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=30)
    connection.request("GET", path, headers={"cookie": cookie} if cookie else {})
    response = connection.getresponse()
    response.body = response.read()
    connection.close()
    return response


def test_an_admin_certificate_logs_in_with_a_secure_cookie(served):
    root, home, port = served
    response = _get(home, port, "/ui/certificates", root / "alice")
    assert response.status == 200 and b"alice (admin)" in response.body
    cookie = response.getheader("set-cookie")
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert _get(home, port, "/ui/issue", root / "alice").status == 200


def test_a_read_role_certificate_reads_but_cannot_issue(served):
    root, home, port = served
    assert _get(home, port, "/ui/certificates", root / "carol").status == 200
    assert _get(home, port, "/ui/issue", root / "carol").status == 403


@pytest.mark.parametrize("who", ["bob", "dave", None], ids=["no-role", "revoked", "no-certificate"])
def test_without_a_live_certificate_with_a_role_there_is_no_session(served, who):
    root, home, port = served
    response = _get(home, port, "/ui/certificates", root / who if who else None)
    assert response.status == 401 and response.getheader("set-cookie") is None


def test_a_cross_site_post_with_the_certificate_alone_is_refused(served):
    """A browser sends its client certificate to any page: a form posted from elsewhere
    opens a fresh session whose CSRF token the other site cannot know."""
    root, home, port = served
    context = ssl.create_default_context(cadata=(home / "ca" / "root.pem").read_text())
    context.load_cert_chain(root / "alice" / "fullchain.pem", root / "alice" / "key.pem")
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=30)
    connection.request("POST", "/ui/issue", body="name=mallory&key_type=ec-p256&format=p12-modern"
                       "&password=12345678&password2=12345678",
                       headers={"content-type": "application/x-www-form-urlencoded"})
    response = connection.getresponse()
    body = response.read()
    connection.close()
    assert response.status == 403 and b"CSRF" in body
    assert b"mallory" not in mtlskit_cli(home, "list").stdout


def test_a_certificate_session_ends_when_the_certificate_is_revoked(served):
    root, home, port = served
    first = _get(home, port, "/ui/certificates", root / "frank")
    cookie = first.getheader("set-cookie").split(";", 1)[0]
    assert _get(home, port, "/ui/certificates", root / "frank", cookie).status == 200
    assert _get(home, port, "/ui/certificates", None, cookie).status == 401  # the cookie alone is not enough
    assert mtlskit_cli(home, "revoke", "frank").returncode == 0
    assert _get(home, port, "/ui/certificates", root / "frank", cookie).status == 401
