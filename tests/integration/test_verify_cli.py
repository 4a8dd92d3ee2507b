"""`mtlskit verify` in-process: exit codes, messages, JSON, CRL files, the inventory, OCSP."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from mtlskit.cli.app import main
from mtlskit.verify.ocsp import OcspSource
from mtlskit.verify.verifier import VerifyRequest, verify
from tests.support_verify import NOW, ONE_DAY, make_ca, make_leaf, run_cli


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    base = tmp_path_factory.mktemp("verify-cli")
    home = base / "home"
    run_cli("--home", home, "init", "--no-passphrase", "--name", "CLI Lab")
    for name in ("alice", "mallory", "trudy"):
        run_cli("--home", home, "issue", "client", name, "--out", base / name)
    return base, home


def run(capsys, *args):
    capsys.readouterr()
    rc = main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_valid_certificate_exits_0_using_the_home_ca(lab, capsys):
    base, home = lab
    rc, out, _ = run(capsys, "--home", home, "verify", base / "alice/cert.pem")
    assert rc == 0 and "[ok]" in out and "CLI Lab Root" in out


def test_json_output_with_fullchain_and_explicit_ca(lab, capsys, tmp_path):
    base, _ = lab
    rc, out, _ = run(capsys, "--home", tmp_path / "none", "verify", base / "alice/fullchain.pem",
                     "--ca", base / "alice/ca.pem", "--json")
    data = json.loads(out)
    assert rc == 0 and data["ok"] is True and len(data["path"]) == 3 and data["purpose"] == "client"
    assert [f["code"] for f in data["findings"]][-1] == "ok"


def test_expired_at_a_later_time_exits_1(lab, capsys):
    base, home = lab
    at = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=800)).strftime("%Y-%m-%dT%H:%M:%SZ")
    rc, out, _ = run(capsys, "--home", home, "verify", base / "alice/fullchain.pem", "--at", at, "--json")
    data = json.loads(out)
    assert rc == 1 and data["findings"][0]["code"] == "cert-expired"


def test_wrong_purpose_exits_1_with_hint(lab, capsys):
    base, home = lab
    rc, out, _ = run(capsys, "--home", home, "verify", base / "alice/fullchain.pem", "--purpose", "server")
    assert rc == 1 and "[wrong-purpose]" in out and "hint: issue a server certificate" in out


def test_revoked_by_crl_file(lab, capsys, tmp_path):
    base, home = lab
    run_cli("--home", home, "revoke", "trudy", "--reason", "keyCompromise")
    crl = tmp_path / "crl.pem"
    run_cli("--home", home, "crl", "--bundle", "--out", crl)
    nohome = tmp_path / "nohome"  # the CRL file alone, not the inventory
    rc, out, _ = run(capsys, "--home", nohome, "verify", base / "trudy/fullchain.pem", "--ca", base / "trudy/ca.pem",
                     "--crl", crl)
    assert rc == 1 and "[revoked]" in out and "(reason: key-compromise)" in out
    rc, out, _ = run(capsys, "--home", nohome, "verify", base / "alice/fullchain.pem", "--ca", base / "alice/ca.pem",
                     "--crl", crl)
    assert rc == 0 and "[crl-missing]" not in out


def test_revoked_in_the_inventory(lab, capsys):
    base, home = lab
    run_cli("--home", home, "revoke", "mallory", "--reason", "superseded")
    rc, out, _ = run(capsys, "--home", home, "verify", base / "mallory/fullchain.pem")
    assert rc == 1 and "revoked in the inventory" in out


def test_the_home_crls_expiring_within_a_day_are_flagged_and_expired_ones_fail(capsys, tmp_path):
    home = tmp_path / "home"
    run_cli("--home", home, "init", "--no-passphrase", "--name", "Short CRL Lab")
    with open(home / "mtlskit.toml", "a") as settings:
        settings.write("crl_days = 1\nroot_crl_days = 1\n")  # the root's own lifetime (issue 12)
    run_cli("--home", home, "issue", "client", "alice", "--out", tmp_path / "alice")
    cert = tmp_path / "alice/fullchain.pem"
    rc, out, _ = run(capsys, "--home", home, "verify", cert, "--json")
    data = json.loads(out)
    assert rc == 0 and "crl-expiring" not in out, data  # nothing published yet: nothing to date
    run_cli("--home", home, "crl")
    rc, out, _ = run(capsys, "--home", home, "verify", cert, "--json")
    expiring = [f for f in json.loads(out)["findings"] if f["code"] == "crl-expiring"]
    assert rc == 0 and len(expiring) == 2 and all(f["level"] == "warning" for f in expiring)
    assert "published by this CA home" in expiring[0]["message"] and "mtlskit crl" in expiring[0]["hint"]
    later = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    rc, out, _ = run(capsys, "--home", home, "verify", cert, "--at", later, "--json")
    errors = [f["code"] for f in json.loads(out)["findings"] if f["level"] == "error"]
    assert rc == 1 and errors == ["crl-expired", "crl-expired"]


@pytest.mark.parametrize("args, message", [
    (["verify", "missing.pem", "--ca", "missing.pem"], "error: certificate file missing.pem does not exist"),
    (["verify", "{cert}", "--ca", "{cert}", "--purpose", "both"], "error: unknown purpose 'both'"),
    (["verify", "{cert}", "--ca", "{cert}", "--crl", "{cert}"], "does not hold a CRL"),
    (["verify", "{cert}", "--ca", "{cert}", "--at", "yesterday"], "is not a time"),
    (["verify", "{cert}", "--ca", "{cert}", "--host", "api.example.com"], "--host is the name a server"),
])
def test_bad_input_is_one_line_and_exit_2(lab, capsys, args, message, tmp_path, monkeypatch):
    base, _ = lab
    monkeypatch.chdir(tmp_path)
    rc, out, err = run(capsys, "--home", tmp_path / "nohome",
                       *[a.format(cert=base / "alice/cert.pem") for a in args])
    assert rc == 2 and message in err and "Traceback" not in err


def test_no_ca_and_no_home_is_a_usage_error(lab, capsys, tmp_path):
    base, _ = lab
    rc, _, err = run(capsys, "--home", tmp_path / "nohome", "verify", base / "alice/cert.pem")
    assert rc == 2 and "error: no trusted CA given" in err and "hint:" in err


# --- OCSP against a responder on loopback ---

class _Responder(http.server.BaseHTTPRequestHandler):
    answers: dict[int, bytes] = {}

    def do_POST(self):  # noqa: N802 - http.server API
        body = self.rfile.read(int(self.headers["Content-Length"]))
        serial = ocsp.load_der_ocsp_request(body).serial_number
        answer = self.answers[serial]
        self.send_response(200)
        self.send_header("Content-Type", "application/ocsp-response")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def responder():
    server = http.server.HTTPServer(("127.0.0.1", 0), _Responder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/ocsp"
    server.shutdown()
    server.server_close()


def _response(leaf, issuer, signer, status, revoked_at=None):
    builder = ocsp.OCSPResponseBuilder().add_response(
        cert=leaf.cert, issuer=issuer.cert, algorithm=hashes.SHA1(), cert_status=status,
        this_update=NOW - ONE_DAY, next_update=NOW + ONE_DAY, revocation_time=revoked_at,
        revocation_reason=x509.ReasonFlags.superseded if revoked_at else None,
    ).responder_id(ocsp.OCSPResponderEncoding.HASH, signer.cert)
    return builder.sign(signer.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


@pytest.mark.parametrize("status, forged, code", [
    (ocsp.OCSPCertStatus.GOOD, False, "ocsp-good"),
    (ocsp.OCSPCertStatus.REVOKED, False, "revoked"),
    (ocsp.OCSPCertStatus.GOOD, True, "ocsp-bad-signature"),
])
def test_ocsp_status_from_a_live_responder(responder, status, forged, code):
    root = make_ca("OCSP Root")
    leaf = make_leaf("ocsp-client", root, ocsp_url=responder)
    signer = make_ca("Forger") if forged else root
    _Responder.answers[leaf.cert.serial_number] = _response(
        leaf, root, signer, status, NOW - ONE_DAY if status is ocsp.OCSPCertStatus.REVOKED else None)
    report = verify(VerifyRequest(leaf=leaf.cert, anchors=[root.cert], at=NOW), [OcspSource()])
    assert [f.code for f in report.findings if f.code.startswith(("ocsp", "revoked"))] == [code]
    assert report.ok is (code == "ocsp-good")


def test_ocsp_responder_down_is_a_warning():
    root = make_ca("OCSP Root")
    leaf = make_leaf("ocsp-client", root, ocsp_url="http://127.0.0.1:9/ocsp")
    report = verify(VerifyRequest(leaf=leaf.cert, anchors=[root.cert], at=NOW), [OcspSource()])
    assert report.ok and "ocsp-unavailable" in [f.code for f in report.findings]


def test_cli_ocsp_flag_asks_the_responder(responder, capsys, tmp_path):
    root = make_ca("OCSP CLI Root")
    now = dt.datetime.now(dt.timezone.utc)
    leaf = make_leaf("ocsp-cli", root, ocsp_url=responder, not_before=now - ONE_DAY)
    builder = ocsp.OCSPResponseBuilder().add_response(
        cert=leaf.cert, issuer=root.cert, algorithm=hashes.SHA1(), cert_status=ocsp.OCSPCertStatus.REVOKED,
        this_update=now - ONE_DAY, next_update=now + ONE_DAY, revocation_time=now - ONE_DAY,
        revocation_reason=x509.ReasonFlags.key_compromise).responder_id(ocsp.OCSPResponderEncoding.HASH, root.cert)
    _Responder.answers[leaf.cert.serial_number] = builder.sign(root.key, hashes.SHA256()).public_bytes(
        serialization.Encoding.DER)
    (tmp_path / "leaf.pem").write_bytes(leaf.cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "root.pem").write_bytes(root.cert.public_bytes(serialization.Encoding.PEM))
    args = ["--home", tmp_path / "nohome", "verify", tmp_path / "leaf.pem", "--ca", tmp_path / "root.pem"]
    rc, out, _ = run(capsys, *args)
    assert rc == 0 and "[revocation-not-checked]" in out
    rc, out, _ = run(capsys, *args, "--ocsp")
    assert rc == 1 and "according to OCSP" in out and "(reason: key-compromise)" in out
