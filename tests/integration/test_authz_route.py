"""/authz in-process: the deployment's secret, the certificate looked up by fingerprint in a
real inventory (revocation seen on the next request), the policy of the deployment record."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from mtlskit.api import authz_route
from mtlskit.api.wiring import build_authorizer
from mtlskit.store.counter import CounterWatch
from mtlskit.authz.decider import Authorizer
from mtlskit.cli.app import main
from mtlskit.clock import FixedClock
from mtlskit.config import load_settings
from mtlskit.deploy.authz import authz_deployments
from mtlskit.service import Service
from mtlskit.store.changes import change_watch

POLICY = '''
[[rule]]
name = "admins"
match = { cn = ["alice"], san_uri = ["spiffe://corp/admin/*"] }
paths = ["/admin/"]
methods = ["GET", "POST"]

[[rule]]
name = "readers"
match = { cn = ["bob", "carol"] }
paths = ["/docs"]
'''


def run(*args) -> None:
    assert main([str(a) for a in args]) == 0, args


class Stack:
    def __init__(self, base: Path) -> None:
        self.base, self.home = base, base / "home"
        run("--home", self.home, "init", "--name", "Authz CA", "--no-passphrase")
        for name, extra in (("alice", ()), ("bob", ()), ("carol", ()), ("ci", ("--uri", "spiffe://corp/admin/ci")),
                            ("dave", ())):
            run("--home", self.home, "issue", "client", name, "--out", base / name, *extra)
        self.deploy(POLICY)
        self.service = Service.open(load_settings(self.home, {"ocsp_refresh_seconds": 3600}))
        # the change watch `serve` gives it (api/wiring.py): revocations count at once (on
        # PostgreSQL the change counter, read here on every request instead of every 150 ms)
        database = self.service.inventory.db
        watch = change_watch(database) if database.dialect == "sqlite" else CounterWatch(database.url, poll_seconds=0)
        self.authorizer = build_authorizer(self.service, watch)

    def deploy(self, policy: str, directory: str = "dep") -> None:
        (self.base / "policy.toml").write_text(policy)
        run("--home", self.home, "deploy", "nginx", "--name", "localhost", "--dir", self.base / directory,
            "--listen", "127.0.0.1:8443", "--revocation", "none", "--policy", self.base / "policy.toml",
            "--authz-url", "http://127.0.0.1:9")

    def secret(self, directory: str = "dep") -> bytes:
        text = (self.base / directory / "authz-secret.conf").read_text()
        return re.search(r'"([^"]+)"', text).group(1).encode()

    def fingerprint(self, name: str) -> bytes:
        cert = x509.load_pem_x509_certificate((self.base / name / "cert.pem").read_bytes())
        return cert.fingerprint(hashes.SHA256()).hex().upper().encode()

    def ask(self, name: str | None, method: str = "GET", path: str = "/admin/x", secret: bytes | None = None,
            extra: list | None = None, authorizer: Authorizer | None = None) -> tuple[int, dict, bytes]:
        headers = [(b"x-mtlskit-authz-secret", self.secret() if secret is None else secret),
                   (b"x-mtlskit-verify", b"SUCCESS" if name else b"NONE"),
                   (b"x-mtlskit-method", method.encode()), (b"x-mtlskit-path", path.encode())]
        if name:
            headers.append((b"x-mtlskit-fingerprint", self.fingerprint(name)))
        status, fields, body = authz_route.answer(authorizer or self.authorizer, "GET", headers + (extra or []))
        return status, dict(fields), body


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Stack:
    return Stack(tmp_path_factory.mktemp("authz"))


def test_an_allowed_request_gets_the_rule_name(stack):
    status, fields, _ = stack.ask("alice", "POST", "/admin/users")
    assert status == 200 and fields[b"x-mtlskit-authz-rule"] == b"admins"
    status, fields, _ = stack.ask("ci", "GET", "/admin/")      # a SPIFFE ID (URI SAN)
    assert status == 200 and fields[b"x-mtlskit-authz-rule"] == b"admins"
    status, fields, _ = stack.ask("bob", "DELETE", "/docs/a")  # no methods: any
    assert status == 200 and fields[b"x-mtlskit-authz-rule"] == b"readers"


@pytest.mark.parametrize("name, method, path, why", [
    ("dave", "GET", "/admin/x", "no rule allows it"),          # a certificate the policy does not name
    ("bob", "GET", "/admin/x", "no rule allows it"),
    ("alice", "DELETE", "/admin/x", "no rule allows it"),
    ("alice", "GET", "/admin", "no rule allows it"),
    ("alice", "GET", "/ADMIN/x", "no rule allows it"),
    ("bob", "GET", "/docsx", "no rule allows it"),
    (None, "GET", "/admin/x", "no verified client certificate"),
])
def test_everything_else_is_denied_with_a_problem(stack, name, method, path, why):
    status, fields, body = stack.ask(name, method, path)
    assert status == 403 and fields[b"content-type"] == b"application/problem+json"
    assert why.encode() in body and b"x-mtlskit-authz-rule" not in fields


def test_a_certificate_this_ca_did_not_issue_is_denied(stack):
    headers = [(b"x-mtlskit-authz-secret", stack.secret()), (b"x-mtlskit-verify", b"SUCCESS"),
               (b"x-mtlskit-method", b"GET"), (b"x-mtlskit-path", b"/admin/x"),
               (b"x-mtlskit-fingerprint", hashlib.sha256(b"not ours").hexdigest().upper().encode())]
    status, _, body = authz_route.answer(stack.authorizer, "GET", headers)
    assert status == 403 and b"not issued by this CA" in body


@pytest.mark.parametrize("secret", [b"", b"wrong", None])
def test_without_the_deployment_secret_nothing_is_decided(stack, secret):
    if secret is None:      # the right secret with one character changed
        good = stack.secret()
        secret = good[:-1] + (b"A" if good[-1:] != b"A" else b"B")
    status, fields, body = stack.ask("alice", secret=secret)
    assert status == 403 and b"shared secret" in body and b"x-mtlskit-authz-rule" not in fields


@pytest.mark.parametrize("field", [b"x-mtlskit-fingerprint", b"X-Mtlskit-Path", b"x_mtlskit_method",
                                   b"x-mtlskit-authz-secret", b"x-mtlskit-verify"])
def test_a_field_sent_twice_is_a_forgery(stack, field):
    status, _, body = stack.ask("dave", extra=[(field, stack.fingerprint("alice") if b"finger" in field else b"/admin/x")])
    assert status == 403
    status, _, _ = stack.ask("alice", extra=[(field, b"x")])
    assert status == 403


def test_only_get_and_head(stack):
    status, fields, _ = authz_route.answer(stack.authorizer, "POST", [])
    assert status == 405 and dict(fields)[b"allow"] == b"GET, HEAD"


def test_authz_is_off_without_a_policy_deployment(tmp_path):
    home = tmp_path / "home"
    run("--home", home, "init", "--name", "No Authz CA", "--no-passphrase")
    service = Service.open(load_settings(home))
    status, _, body = authz_route.answer(build_authorizer(service), "GET", [])
    assert status == 404 and b"deploy nginx --policy" in body
    status, _, _ = authz_route.answer(None, "GET", [])
    assert status == 404


def test_an_expired_certificate_is_denied(stack):
    later = Authorizer(stack.service.inventory, FixedClock(dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=400)),
                       None, lambda: authz_deployments(stack.service.inventory))
    status, _, body = stack.ask("alice", "GET", "/admin/x", authorizer=later)
    assert status == 403 and b"certificate expired" in body


def test_a_revocation_counts_on_the_next_request(stack):
    assert stack.ask("carol", "GET", "/docs")[0] == 200
    run("--home", stack.home, "revoke", "carol", "--reason", "key-compromise")
    status, _, body = stack.ask("carol", "GET", "/docs")
    assert status == 403 and b"certificate revoked" in body


def test_a_new_policy_counts_without_restarting_and_the_secret_is_kept(stack):
    secret = stack.secret()
    assert stack.ask("dave", "GET", "/reports/q1")[0] == 403
    stack.deploy(POLICY + '\n[[rule]]\nname = "reports"\nmatch = { cn = ["dave"] }\npaths = ["/reports/"]\n')
    assert stack.secret() == secret
    status, fields, _ = stack.ask("dave", "GET", "/reports/q1")
    assert status == 200 and fields[b"x-mtlskit-authz-rule"] == b"reports"


def test_each_deployment_is_judged_by_its_own_policy(stack):
    stack.deploy('[[rule]]\nname = "only-dave"\nmatch = { cn = ["dave"] }\npaths = ["/"]\n', directory="dep2")
    other = stack.secret("dep2")
    assert other != stack.secret()
    assert stack.ask("alice", "GET", "/admin/x", secret=other)[0] == 403
    status, fields, _ = stack.ask("dave", "GET", "/admin/x", secret=other)
    assert status == 200 and fields[b"x-mtlskit-authz-rule"] == b"only-dave"
    assert stack.ask("alice", "GET", "/admin/x")[0] == 200


def test_an_unreadable_policy_denies_that_deployment_only(stack, tmp_path):
    (stack.base / "dep2" / "policy.toml").write_text("not toml [")
    stack.authorizer._next_refresh = 0      # the periodic refresh, without waiting for it
    status, _, body = stack.ask("dave", "GET", "/x", secret=stack.secret("dep2"))
    assert status == 403 and b"policy cannot be read" in body
    assert stack.ask("alice", "GET", "/admin/x")[0] == 200
