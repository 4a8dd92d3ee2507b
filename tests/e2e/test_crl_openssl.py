"""openssl as the independent judge of what `mtlskit revoke` / `mtlskit crl` publish.

The CLI runs as a real process (`python -m mtlskit`); openssl 3 checks the CRLs'
signatures (`openssl crl -verify`) and the chain with revocation (`openssl verify
-crl_check_all`), the check Nginx/Apache/HAProxy perform with the bundle.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support_crl import openssl

pytestmark = pytest.mark.e2e
SRC = Path(__file__).resolve().parents[2] / "src"


def mtlskit(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(SRC))
    return subprocess.run([sys.executable, "-m", "mtlskit", "--home", str(home), *args],
                          capture_output=True, text=True, env=env, timeout=120)


def _ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, result.stderr
    return result


LAYOUTS = {"ec-p256": ("ec-p256", False), "ec-p384": ("ec-p384", False), "rsa-2048": ("rsa-2048", False),
           "ed25519": ("ed25519", False), "single-tier": ("ec-p256", True)}
TWO_TIER = pytest.mark.parametrize("pki", [v for v in LAYOUTS.values() if not v[1]], indirect=True,
                                   ids=[k for k, v in LAYOUTS.items() if not v[1]])


@pytest.fixture(scope="module", params=list(LAYOUTS.values()), ids=list(LAYOUTS))
def pki(request, tmp_path_factory):
    key_type, single = request.param
    root = tmp_path_factory.mktemp("crl-e2e")
    home, out = root / "home", root / "out"
    _ok(mtlskit(home, "init", "--no-passphrase", "--key-type", key_type,
                *(["--no-intermediate"] if single else [])))
    for name in ("alice", "bob"):
        _ok(mtlskit(home, "issue", "client", name, "--out", str(out / name)))
    _ok(mtlskit(home, "issue", "server", "www", "--dns", "www.example.test", "--out", str(out / "www")))
    _ok(mtlskit(home, "revoke", "alice", "--reason", "key-compromise"))
    bundle = root / "crl-bundle.pem"
    _ok(mtlskit(home, "crl", "--bundle", "--out", str(bundle)))
    return home, out, bundle, single


def _verify(out: Path, name: str, crl_file: Path) -> subprocess.CompletedProcess:
    chain = out / name / "chain.pem"
    untrusted = ["-untrusted", str(chain)] if chain.read_text().strip() else []
    return openssl("verify", "-crl_check_all", "-CAfile", str(out / name / "ca.pem"), *untrusted,
                   "-CRLfile", str(crl_file), str(out / name / "cert.pem"))


def test_bundle_refuses_the_revoked_client_and_accepts_the_others(pki):
    _, out, bundle, _ = pki
    revoked = _verify(out, "alice", bundle)
    assert revoked.returncode != 0
    assert "certificate revoked" in revoked.stdout + revoked.stderr
    for name in ("bob", "www"):
        accepted = _verify(out, name, bundle)
        assert accepted.returncode == 0, accepted.stdout + accepted.stderr
        assert accepted.stdout.strip().endswith(": OK")


@TWO_TIER
def test_without_the_root_crl_every_client_is_refused(pki):
    """Why --bundle exists: with -crl_check_all a chain CA without a CRL fails everyone."""
    home, out, _, _ = pki
    only_issuing = home / "crl" / "intermediate.pem"
    result = _verify(out, "bob", only_issuing)
    assert result.returncode != 0
    assert "unable to get certificate CRL" in result.stdout + result.stderr


@pytest.mark.parametrize("form", ["der", "pem"])
def test_openssl_crl_verify_accepts_every_crl(pki, form):
    home, _, _, single = pki
    names = ["root"] if single else ["root", "intermediate"]
    for name in names:
        path = home / "crl" / f"{name}.{'crl' if form == 'der' else 'pem'}"
        result = openssl("crl", "-in", str(path), "-inform", form.upper(), "-noout",
                         "-CAfile", str(home / "ca" / f"{name}.pem"), "-verify")
        assert result.returncode == 0 and "verify OK" in result.stdout + result.stderr, result.stderr


@TWO_TIER
def test_openssl_crl_verify_refuses_the_wrong_issuer(pki, tmp_path):
    home, _, _, _ = pki
    result = openssl("crl", "-in", str(home / "crl" / "intermediate.crl"), "-inform", "DER", "-noout",
                     "-CAfile", str(home / "ca" / "root.pem"), "-verify")
    assert result.returncode != 0
    assert "Error getting CRL issuer certificate" in result.stdout + result.stderr


def test_openssl_reads_reason_number_and_aki(pki):
    home, out, _, single = pki
    name = "root" if single else "intermediate"
    text = openssl("crl", "-in", str(home / "crl" / f"{name}.pem"), "-noout", "-text").stdout
    assert "Version 2" in text and "X509v3 CRL Number" in text
    assert "X509v3 Authority Key Identifier" in text
    assert "Key Compromise" in text
    serial = openssl("x509", "-in", str(out / "alice" / "cert.pem"), "-noout", "-serial").stdout
    assert serial.strip().split("=")[1].lstrip("0") in text.replace(" ", "")


def test_pkilint_lint_crl_is_clean_on_every_published_crl(pki):
    from tests.judges import pkilint

    home, _, _, single = pki
    for name in (["root"] if single else ["root", "intermediate"]):
        for suffix in ("crl", "pem"):
            assert pkilint("crl", home / "crl" / f"{name}.{suffix}", "-t", "CRL", "-p", "PKIX") == ""
