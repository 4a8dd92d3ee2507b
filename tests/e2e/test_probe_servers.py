"""`mtlskit probe --json` against real Nginx, Apache and HAProxy requiring client
certificates, in TLS 1.3 and TLS 1.2: each client case must come back with its cause
as the first error finding, and a listener without client auth says so."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mtlskit.cli.app import main
from tests.support_verify import ClientCase, build_pki, start_server, stop

pytestmark = pytest.mark.e2e

SERVERS = [(kind, version) for kind in ("nginx", "apache", "haproxy") for version in ("1.3", "1.2")]
BINARIES = {"nginx": "nginx", "apache": "apache2", "haproxy": "haproxy"}
CASES = ["valid", "no-certificate", "other-ca", "expired", "not-yet-valid", "revoked", "server-only-eku",
         "key-of-another", "leaf-without-intermediate"]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return build_pki(tmp_path_factory.mktemp("probe-pki"))


@pytest.fixture(scope="module", params=SERVERS, ids=[f"{k}-tls{v}" for k, v in SERVERS])
def server(request, pki, tmp_path_factory):
    kind, version = request.param
    if shutil.which(BINARIES[kind]) is None:
        pytest.skip(f"{BINARIES[kind]} is not installed")
    srv = start_server(kind, pki, tmp_path_factory.mktemp(f"{kind}-{version}"), version)
    yield srv
    stop(srv)


def probe_json(capsys, pki, url: str, case: ClientCase | None = None, *extra: str) -> tuple[int, dict]:
    capsys.readouterr()
    args = ["--home", str(pki.home), "probe", url, "--ca", str(pki.root), "--json", *extra]
    if case is not None and case.cert:
        args += ["--cert", str(case.cert), "--key", str(case.key)]
    rc = main(args)
    return rc, json.loads(capsys.readouterr().out)


def first_error(report: dict) -> str:
    errors = [f["code"] for f in report["findings"] if f["level"] == "error"]
    return errors[0] if errors else "ok"


@pytest.mark.parametrize("case_name", CASES)
def test_probe_names_the_cause(server, pki, capsys, case_name):
    case = pki.cases[case_name]
    rc, report = probe_json(capsys, pki, server.url, case)
    assert first_error(report) == case.expected, (report, server.log())
    assert report["client_auth"] == "required"
    assert report["acceptable_cas"] == ["CN=Probe Lab Root"]
    assert report["tls_version"] == f"TLSv{server.version}"
    assert report["tls_versions"] == [f"TLSv{server.version}"]
    assert set(report) >= {"ok", "url", "tls_version", "client_auth", "acceptable_cas", "http_status", "findings"}
    for finding in report["findings"]:
        assert set(finding) == {"code", "level", "message", "hint"} and finding["message"]
    if case.expected == "ok":
        assert (rc, report["ok"], report["http_status"]) == (0, True, 200)
    else:
        assert (rc, report["ok"]) == (1, False)
        assert next(f for f in report["findings"] if f["level"] == "error")["hint"]


def test_probe_reports_server_without_client_auth(server, pki, capsys):
    rc, report = probe_json(capsys, pki, f"https://127.0.0.1:{server.open_port}/", pki.cases["valid"])
    assert (rc, report["ok"], first_error(report)) == (1, False, "client-auth-not-requested")
    assert report["client_auth"] == "none" and report["acceptable_cas"] == []
    assert report["http_status"] == 200


def test_probe_hint_names_the_server_side_fix(server, pki, capsys):
    rc, report = probe_json(capsys, pki, server.url, pki.cases["leaf-without-intermediate"])
    hint = report["findings"][0]["hint"]
    assert "fullchain.pem" in hint
    if server.kind == "nginx":  # nginx names itself in its 400 page; Apache and HAProxy refuse with a bare alert
        assert "ssl_client_certificate" in hint and "ssl_verify_depth" in hint
        assert report["server"] == "nginx" and report["http_status"] == 400
    else:
        assert report["http_status"] is None


def test_probe_as_a_subprocess(server, pki):
    """The installed entry point, not only the in-process CLI: exit code and one JSON object."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2] / "src"))
    case = pki.cases["expired"]
    proc = subprocess.run([sys.executable, "-m", "mtlskit", "--home", str(pki.home), "probe", server.url,
                           "--ca", str(pki.root), "--cert", str(case.cert), "--key", str(case.key), "--json"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert first_error(json.loads(proc.stdout)) == "client-cert-expired"
    assert proc.stderr.startswith("error: mutual TLS with") and "Traceback" not in proc.stderr


def test_probe_without_ca_prints_no_library_warning(server, pki):
    """Issue 11: the system CA store holds roots cryptography warns about; stderr must stay clean."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2] / "src"))
    env.pop("PYTHONWARNINGS", None)
    proc = subprocess.run([sys.executable, "-m", "mtlskit", "--home", str(pki.home), "probe", server.url],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "server-cert-untrusted" in proc.stdout  # the lab CA is not in the system store
    assert "Warning" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("error: mutual TLS with") and proc.stderr.count("\n") <= 2, proc.stderr


def test_server_without_crl_accepts_a_revoked_certificate_and_probe_warns(server, pki, capsys):
    rc, report = probe_json(capsys, pki, f"https://127.0.0.1:{server.nocrl_port}/", pki.cases["revoked"])
    assert (rc, report["ok"], report["http_status"]) == (0, True, 200)
    warning = next(f for f in report["findings"] if f["code"] == "client-cert-revoked")
    assert warning["level"] == "warning" and "accepted" in warning["message"]
    if server.kind == "nginx":
        assert "ssl_crl" in warning["hint"]
