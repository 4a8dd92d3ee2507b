"""The REST API in-process on a real CA home: tokens of every role, client certificates
put in the ASGI ``tls`` extension as the TLS listener does, and problem+json checks."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from mtlskit.api.token import create_api_token, ensure_token, load_token
from mtlskit.api.wiring import build_worker
from mtlskit.config import load_settings
from mtlskit.publish.refresher import CrlRefresher
from mtlskit.service import Service
from tests.support_crl import issue, make_home
from tests.support_ocsp import AsgiClient

API = "/api/v1"
ROLES_TOML = '\n[roles]\nadmin = ["cert-admin"]\nrevoke = ["cert-revoker"]\nread = ["ou:Ops"]\n'


def with_tls(app, client_pem: str | None):
    """``app`` as the TLS listener calls it: the verified client certificate in the scope."""
    async def tls_app(scope, receive, send):
        if scope["type"] == "http":
            chain = [client_pem] if client_pem else []
            scope = {**scope, "extensions": {**(scope.get("extensions") or {}), "tls": {"client_cert_chain": chain}}}
        await app(scope, receive, send)

    return tls_app


@dataclasses.dataclass
class RestWorld:
    home: Path
    out: Path
    service: Service
    authority: object
    worker: object
    client: AsgiClient
    file_token: str
    tokens: dict[str, str]   # role -> token

    def auth(self, role: str = "admin") -> dict:
        return {"authorization": f"Bearer {self.tokens[role]}"}

    def get(self, path: str, role: str | None = "admin", **kwargs):
        headers = {**(self.auth(role) if role else {}), **kwargs.pop("headers", {})}
        return self.client.get(API + path, headers=headers, **kwargs)

    def post(self, path: str, body, role: str | None = "admin", headers: dict | None = None):
        content = body if isinstance(body, (bytes, str)) else json.dumps(body)
        return self.client.post(API + path, content=content, headers={
            "content-type": "application/json", **(self.auth(role) if role else {}), **(headers or {})})

    def as_certificate(self, pem: str | None) -> AsgiClient:
        return AsgiClient(with_tls(self.worker.app, pem))

    def events(self, action: str) -> list[dict]:
        return [e for e in self.service.inventory.events(limit=10_000) if e["action"] == action]


def build_world(root: Path) -> RestWorld:
    home = make_home(root)
    with open(home / "mtlskit.toml", "a") as toml:
        toml.write(ROLES_TOML)
    out = root / "out"
    for name in ("cert-admin", "cert-revoker", "cert-nobody"):
        issue(home, "client", name, out)
    issue(home, "client", "ops-reader", out, "--org-unit", "Ops")
    issue(home, "server", "web.example", out)
    service = Service.open(load_settings(home, {"ocsp_refresh_seconds": 3600}))
    authority = service.authority(lambda: None)
    CrlRefresher(service, authority).publish_due()
    file_token = load_token(ensure_token(home))
    tokens = {role: create_api_token(service, f"t-{role}", role)[0] for role in ("read", "issue", "revoke", "admin")}
    worker = build_worker(service, authority, file_token)
    return RestWorld(home, out, service, authority, worker, AsgiClient(worker.app), file_token, tokens)


def assert_problem(response, status: int, code: str | None = None, *fragments: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json", response.headers
    body = response.json()
    assert body["status"] == status, body
    if code is not None:
        assert body.get("code") == code, body
    for fragment in fragments:
        assert fragment in body["detail"], body
    if status == 401:
        assert response.headers["www-authenticate"] == 'Bearer realm="mtlskit"'
    return body
