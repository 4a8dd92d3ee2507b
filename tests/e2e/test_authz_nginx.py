"""`deploy nginx --policy` through a real Nginx and a real `mtlskit serve`: who may do what
where, the rule name the upstream receives, a revocation on the very next request."""

from __future__ import annotations

import shutil
import time
import urllib.parse

import pytest

from tests.support_authz import AuthzStack
from tests.support_ocsp import mtlskit_cli

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")]


@pytest.fixture(scope="module")
def stack():
    built = AuthzStack()
    yield built
    built.close()


def _reached(stack, before: int) -> list:
    return stack.echo.requests[before:]


@pytest.mark.parametrize("client, method, target, rule", [
    ("alice", "GET", "/admin/users", "admins"),        # cn
    ("alice", "POST", "/admin/users", "admins"),
    ("ci", "GET", "/admin/", "admins"),                # SPIFFE ID: a URI SAN
    ("alice", "GET", "/public/x", "public"),
    ("bob", "DELETE", "/public/x", "public"),          # no methods: any
    ("bob", "PATCH", "/public/", "public"),
])
def test_allowed_requests_reach_the_upstream_with_the_rule_name(stack, client, method, target, rule):
    before = len(stack.echo.requests)
    reply = stack.request(client, target, method, "Content-Length: 0\r\n" if method in ("POST", "PATCH") else "")
    assert reply.status == 200, reply
    assert reply.json()["method"] == method and reply.json()["path"] == target
    assert reply.header("X-Client-Authz-Rule") == [rule]
    assert _reached(stack, before) == [(method, target)]


@pytest.mark.parametrize("client, method, target", [
    ("eve", "GET", "/public/x"),        # issued by this CA, named by no rule
    ("eve", "GET", "/admin/x"),
    ("bob", "GET", "/admin/x"),         # named, but not for this path
    ("intruder", "GET", "/admin/x"),    # spiffe://corp/administrator is not under spiffe://corp/admin/
    ("alice", "DELETE", "/admin/x"),    # not a listed method
    ("alice", "HEAD", "/admin/x"),      # HEAD only where listed
    ("alice", "GET", "/elsewhere"),     # deny by default
    ("ci", "GET", "/public/x"),
])
def test_everything_else_is_denied_and_never_reaches_the_upstream(stack, client, method, target):
    before = len(stack.echo.requests)
    assert stack.request(client, target, method).status == 403
    assert _reached(stack, before) == []


def test_no_certificate_no_request(stack):
    before = len(stack.echo.requests)
    try:
        status = stack.request(None, "/public/x").status
    except (OSError, ConnectionError):
        status = None      # the handshake itself refused (ssl_verify_client on)
    assert status in (None, 400)
    assert _reached(stack, before) == []


def test_a_revoked_certificate_is_denied_on_its_next_request_without_a_reload(stack):
    with stack.connect("mallory") as kept_alive:     # the handshake happened before the revocation
        assert kept_alive.send("/public/a").status == 200
        done = mtlskit_cli(stack.home, "revoke", "mallory", "--reason", "key-compromise")
        assert done.returncode == 0, done.stderr
        before = len(stack.echo.requests)
        assert kept_alive.send("/public/b").status == 403
        assert _reached(stack, before) == []
    assert stack.request("mallory", "/public/c").status == 403      # and on a new connection
    assert stack.request("alice", "/public/c").status == 200          # the others go on


def test_the_decision_follows_the_path_nginx_routes_and_the_upstream_gets(stack):
    """Percent-encoding: decided on the decoded $uri, which is what the upstream decodes."""
    for target, routed in [("/%70ublic/x", "/public/x"), ("/public/%61dmin", "/public/admin"),
                           ("/public/x?next=/admin/", "/public/x"), ("/public/a%20b", "/public/a b"),
                           ("/public/caf%C3%A9", "/public/café"), ("/%61dmin/x", "/admin/x")]:
        client = "alice" if routed.startswith("/admin/") else "bob"
        reply = stack.request(client, target)
        assert reply.status == 200, (target, reply)
        received = reply.json()["path"]
        assert received == target
        assert urllib.parse.unquote(received.split("?")[0]) == routed
    assert stack.request("bob", "/%61dmin/x").status == 403


def _access_log_once_it_has(path, count: int, marker: str, timeout: float = 10.0) -> list[str]:
    """nginx writes a request's log line after its response: wait until ``count`` lines
    with ``marker`` are there (the client may read the log before the last one)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = path.read_text().splitlines()
        if sum(marker in line for line in lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def test_the_access_log_says_which_rule_allowed_and_why_others_were_denied(stack):
    stack.request("alice", "/admin/logged")
    stack.request("eve", "/public/logged")
    stack.request("bob", "/admin/logged")
    log = _access_log_once_it_has(stack.directory / "access.log", 3, "/logged HTTP")
    [allowed] = [line for line in log if "GET /admin/logged" in line and "CN=alice" in line]
    assert ' 200 ' in allowed and 'rule=admins denied=""' in allowed
    [eve] = [line for line in log if "GET /public/logged" in line]
    assert ' 403 ' in eve and 'rule= denied="no rule allows it"' in eve
    [bob] = [line for line in log if "GET /admin/logged" in line and "CN=bob" in line]
    assert ' 403 ' in bob and 'denied="no rule allows it"' in bob
