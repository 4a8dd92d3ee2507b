"""Issue 12, `mtlskit rotate intermediate`: a new issuing intermediate with its own name;
the old one keeps publishing revocation; the chain and client-CA bundle trust both (judged
by openssl); deployments get the new bundle; `list --expiring` shows and flags the CAs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509

from mtlskit.clock import FixedClock
from mtlskit.config import load_settings
from mtlskit.lifecycle.rotation import expiring_cas
from mtlskit.service import Service
from tests.judges import openssl, pkilint


@pytest.fixture
def rotated(fresh_home, tmp_path, cli):
    """A home with alice (old intermediate), then rotated, then bob (new intermediate)."""
    assert cli("--home", fresh_home, "issue", "client", "alice", "--out", tmp_path / "alice").code == 0
    result = cli("--home", fresh_home, "rotate", "intermediate")
    assert result.code == 0, result.err
    assert "intermediate-2 now issues" in result.out
    assert cli("--home", fresh_home, "issue", "client", "bob", "--out", tmp_path / "bob").code == 0
    return fresh_home


def _certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_issuance_switches_and_the_names_differ(rotated, tmp_path, cli):
    cas = {p.name for p in (rotated / "ca").glob("*.pem")}
    assert {"intermediate.pem", "intermediate-2.pem", "intermediate-2.key.pem"} <= cas
    old, new = _certificate(rotated / "ca" / "intermediate.pem"), _certificate(rotated / "ca" / "intermediate-2.pem")
    assert old.subject != new.subject and new.issuer == old.issuer
    assert _certificate(tmp_path / "bob" / "cert.pem").issuer == new.subject
    assert _certificate(tmp_path / "bob" / "chain.pem") == new
    service = Service.open(load_settings(rotated))
    issuers = {r.name: r.issuer for r in service.inventory.query(dt.datetime.now(dt.timezone.utc))}
    assert issuers["alice"] == "intermediate" and issuers["bob"] == "intermediate-2"
    assert issuers["intermediate-2"] == "root"


def test_both_chains_verify_and_the_old_intermediate_still_revokes(rotated, tmp_path, cli):
    assert cli("--home", rotated, "revoke", "alice").code == 0
    assert cli("--home", rotated, "crl", "--bundle", "--out", tmp_path / "crls.pem").code == 0
    assert (tmp_path / "crls.pem").read_bytes().count(b"BEGIN X509 CRL") == 3
    trusted = tmp_path / "client-ca.pem"
    trusted.write_bytes(b"".join((rotated / "ca" / f"{n}.pem").read_bytes()
                                 for n in ("root", "intermediate", "intermediate-2")))
    bob = openssl("verify", "-crl_check_all", "-CRLfile", tmp_path / "crls.pem", "-CAfile", trusted,
                  tmp_path / "bob" / "cert.pem")
    assert bob.returncode == 0, bob.stdout + bob.stderr
    alice = openssl("verify", "-crl_check_all", "-CRLfile", tmp_path / "crls.pem", "-CAfile", trusted,
                    tmp_path / "alice" / "cert.pem")
    assert alice.returncode != 0 and b"revoked" in alice.stdout + alice.stderr
    for name in ("alice", "bob"):   # each leaf's own chain.pem leads to the root
        chain = openssl("verify", "-CAfile", rotated / "ca" / "root.pem", "-untrusted",
                        tmp_path / name / "chain.pem", tmp_path / name / "cert.pem")
        assert chain.returncode == 0, chain.stdout + chain.stderr


def test_the_new_intermediate_and_the_long_root_crl_lint_clean(rotated, tmp_path, cli):
    assert pkilint("cert", rotated / "ca" / "intermediate-2.pem") == ""
    assert cli("--home", rotated, "crl", "--ca", "root", "--out", tmp_path / "root.crl").code == 0
    assert pkilint("crl", tmp_path / "root.crl", "-t", "CRL", "-p", "PKIX") == ""
    checked = openssl("crl", "-in", tmp_path / "root.crl", "-noout", "-CAfile", rotated / "ca" / "root.pem")
    assert checked.returncode == 0 and b"verify OK" in checked.stdout + checked.stderr


def test_rotating_again_gives_a_third_generation(rotated, cli):
    assert cli("--home", rotated, "rotate", "intermediate").code == 0
    service = Service.open(load_settings(rotated))
    registry = service.ca_files.registry()
    assert registry.names == ("root", "intermediate", "intermediate-2", "intermediate-3")
    assert registry.issuing == "intermediate-3"
    assert registry.retired == ("intermediate", "intermediate-2")


def test_a_single_ca_home_has_nothing_to_rotate(make_home, cli):
    home = make_home("--no-intermediate")
    result = cli("--home", home, "rotate", "intermediate")
    assert result.code == 2 and result.err.startswith("error: this CA has no intermediate")
    assert sorted(p.name for p in (home / "ca").iterdir()) == ["root.key.pem", "root.pem"]


def test_rotation_pushes_the_client_ca_bundle_to_deployments(fresh_home, tmp_path, cli):
    deploy = tmp_path / "deploy"
    result = cli("--home", fresh_home, "deploy", "nginx", "--name", "localhost", "--dns", "localhost",
                 "--dir", deploy, "--listen", "127.0.0.1:18443", "--upstream", "http://127.0.0.1:9",
                 "--standalone")
    assert result.code == 0, result.err
    assert deploy.joinpath("client-ca.pem").read_bytes().count(b"BEGIN CERTIFICATE") == 2
    result = cli("--home", fresh_home, "rotate", "intermediate")
    assert result.code == 0, result.err
    assert f"deployment nginx {deploy}: not running" in result.out
    bundle = x509.load_pem_x509_certificates(deploy.joinpath("client-ca.pem").read_bytes())
    assert [c for c in bundle] == list(Service.open(load_settings(fresh_home)).ca_certificates().values())
    assert deploy.joinpath("crl.pem").read_bytes().count(b"BEGIN X509 CRL") == 3


def test_list_expiring_shows_and_flags_the_cas(make_home, cli):
    home = make_home("--intermediate-days", "200")
    result = cli("--home", home, "list", "--expiring", "30d")
    assert result.code == 0
    lines = {line.split()[0]: line for line in result.out.splitlines()[result.out.splitlines().index("CA certificates:") + 1:]}
    assert set(lines) == {"root", "intermediate"}
    assert "warning: expires before the certificates it signs" in lines["intermediate"]
    assert "warning" not in lines["root"]
    service = Service.open(load_settings(make_home()), FixedClock(dt.datetime.now(dt.timezone.utc)))
    assert [short for _, _, short in expiring_cas(service)] == [False, False]


def test_renewing_moves_a_client_of_the_old_intermediate_to_the_new_one(rotated, tmp_path, cli):
    result = cli("--home", rotated, "renew", "alice")
    assert result.code == 0, result.err
    new = _certificate(rotated / "ca" / "intermediate-2.pem")
    assert _certificate(tmp_path / "alice" / "cert.pem").issuer == new.subject
    assert _certificate(tmp_path / "alice" / "chain.pem") == new
    checked = openssl("verify", "-CAfile", rotated / "ca" / "root.pem", "-untrusted",
                      tmp_path / "alice" / "chain.pem", tmp_path / "alice" / "cert.pem")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_running_serve_picks_up_the_new_intermediate(fresh_home, tmp_path, cli):
    import asyncio

    import httpx
    from cryptography.x509 import ocsp as cocsp

    from mtlskit.api.wiring import build_worker
    from tests.support_ocsp import request_der

    service = Service.open(load_settings(fresh_home), FixedClock(dt.datetime.now(dt.timezone.utc)))
    worker = build_worker(service, service.authority(lambda: None))
    assert sorted(worker.source.cas) == ["intermediate", "root"]
    assert cli("--home", fresh_home, "rotate", "intermediate").code == 0
    assert cli("--home", fresh_home, "issue", "client", "bob", "--out", tmp_path / "bob").code == 0
    worker.periodic()
    assert sorted(worker.source.cas) == ["intermediate", "intermediate-2", "root"]
    new = _certificate(fresh_home / "ca" / "intermediate-2.pem")
    response = cocsp.load_der_ocsp_response(
        worker.source.respond(request_der(_certificate(tmp_path / "bob" / "cert.pem"), new)).body)
    assert response.certificate_status == cocsp.OCSPCertStatus.GOOD
    assert response.certificates[0].issuer == new.subject

    async def fetch(path: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=worker.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ca.test") as client:
            return await client.get(path)

    assert asyncio.run(fetch("/ca/intermediate-2.pem")).status_code == 200
    crl = asyncio.run(fetch("/crl/intermediate-2.crl"))
    assert crl.status_code == 200 and x509.load_der_x509_crl(crl.content).issuer == new.subject
    worker.periodic()   # nothing new: nothing changes
    assert sorted(worker.source.cas) == ["intermediate", "intermediate-2", "root"]
