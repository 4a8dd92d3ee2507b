"""Replicas of the merged service on one PostgreSQL: a credential revoked through one
process is refused by another on its very next request (API tokens, client certificates
on the API, UI sessions a certificate opened)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mtlskit.api.token import create_api_token
from mtlskit.api.wiring import build_worker
from mtlskit.config import load_settings
from mtlskit.service import Service
from mtlskit.ui.session import COOKIE
from mtlskit.ui.setup import UiSetup
from tests.security.test_service_combined import FILE_TOKEN, _as_tls, _bearer
from tests.support_crl import cli, issue
from tests.support_ocsp import AsgiClient

pytestmark = pytest.mark.security


class Replica:
    def __init__(self, home) -> None:
        self.settings = load_settings(home, {"ocsp_refresh_seconds": 3600})
        self.service = Service.open(self.settings)
        self.authority = self.service.authority(lambda: None)
        self.setup = UiSetup.prepare(self.settings, self.service.clock.now().timestamp())
        self.app = build_worker(self.service, self.authority, api_token=FILE_TOKEN, ui=self.setup).app
        self.client = AsgiClient(self.app)


@pytest.fixture(scope="module")
def replicas(tmp_path_factory, postgres_server):
    root = tmp_path_factory.mktemp("replicas")
    home = root / "home"
    assert cli(home, "--database-url", postgres_server.create_database(), "init", "--no-passphrase") == 0
    with open(home / "mtlskit.toml", "a") as config:
        config.write('\n[roles]\nadmin = ["alice", "carol"]\n')
    dirs = {name: issue(home, "client", name, root / "out") for name in ("alice", "carol")}
    return home, dirs, Replica(home), Replica(home)


def test_an_api_token_revoked_by_the_cli_is_refused_by_both_replicas_at_once(replicas):
    home, _, one, two = replicas
    token, _ = create_api_token(one.service, "replicated", "read")
    assert one.client.get("/api/v1/whoami", headers=_bearer(token)).status_code == 200
    assert two.client.get("/api/v1/whoami", headers=_bearer(token)).status_code == 200
    done = subprocess.run([sys.executable, "-m", "mtlskit", "--home", str(home), "token", "api", "revoke", "replicated"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert one.client.get("/api/v1/whoami", headers=_bearer(token)).status_code == 401
    assert two.client.get("/api/v1/whoami", headers=_bearer(token)).status_code == 401


def test_a_certificate_revoked_through_one_replica_ends_its_session_and_api_access_on_the_other(replicas):
    _, dirs, one, two = replicas
    carol_pem = (dirs["carol"] / "cert.pem").read_text()
    carol_on_two = AsgiClient(_as_tls(two.app, carol_pem))
    first = carol_on_two.get("/ui/certificates")
    assert first.status_code == 200
    cookie = first.cookies[COOKIE]
    alice_on_one = AsgiClient(_as_tls(one.app, (dirs["alice"] / "cert.pem").read_text()))
    revoked = alice_on_one.post("/api/v1/revocations", json={"targets": ["carol"], "reason": "key-compromise"})
    assert revoked.status_code in (200, 201), revoked.text
    assert carol_on_two.get("/api/v1/whoami").status_code == 401
    assert two.client.get("/ui/certificates", headers={"cookie": f"{COOKIE}={cookie}"}).status_code == 401
