"""api/auth.verified_principal against a real CA home: only live certificates of the
inventory authenticate, and a revocation counts at once."""

from __future__ import annotations

import datetime as dt

from cryptography import x509

from mtlskit.api.auth import Principal, certificate_refusal, verified_principal
from mtlskit.config import load_settings
from mtlskit.service import Service
from tests.support_crl import cli, issue, make_home
from tests.support_deploy import CLIENT, make_ca, make_leaf


def _cert(directory) -> x509.Certificate:
    return x509.load_pem_x509_certificate((directory / "cert.pem").read_bytes())


def test_live_inventory_certificates_only(tmp_path):
    home = make_home(tmp_path)
    with open(home / "mtlskit.toml", "a") as toml:
        toml.write('\n[roles]\nadmin = ["alice", "bob", "web"]\n')
    alice = _cert(issue(home, "client", "alice", tmp_path / "out"))
    bob = _cert(issue(home, "client", "bob", tmp_path / "out"))
    web = _cert(issue(home, "server", "web", tmp_path / "out", "--dns", "web.example"))
    service = Service.open(load_settings(home))
    now = dt.datetime.now(dt.timezone.utc)
    inventory = service.inventory

    assert verified_principal(alice, service.settings, inventory, now) == Principal("alice", "admin", "certificate")
    assert cli(home, "revoke", "bob") == 0
    assert verified_principal(bob, service.settings, inventory, now) is None
    assert certificate_refusal(bob, inventory, now) == "the client certificate is revoked"
    assert certificate_refusal(web, inventory, now).endswith("(no clientAuth EKU)")
    later = alice.not_valid_after_utc + dt.timedelta(seconds=1)
    assert certificate_refusal(alice, inventory, later) == "the client certificate is expired"
    stranger = make_leaf(make_ca("Other CA"), "alice", CLIENT).cert  # same name, not ours
    assert certificate_refusal(stranger, inventory, now) == "the client certificate is not in this CA's inventory"
    assert verified_principal(stranger, service.settings, inventory, now) is None
