"""The REST API of `mtlskit serve --api` in-process (httpx ASGI transport, a real CA home):
revocation through the running service, authentication, refusals as problem+json."""

from __future__ import annotations

import json
import logging
import os

import pytest
from cryptography import x509
from cryptography.x509 import ocsp as cocsp

from mtlskit.api.token import bearer_matches, ensure_token, load_token, token_path
from mtlskit.api.wiring import build_worker
from mtlskit.cli.serve_cmd import _banner
from mtlskit.config import load_settings
from mtlskit.errors import BadInput
from mtlskit.publish.refresher import CrlRefresher
from mtlskit.service import Service
from tests.support_crl import issue, make_home, serial_of
from tests.support_ocsp import AsgiClient, request_der

REVOCATIONS = "/api/v1/revocations"


class Pki:
    def __init__(self, tmp_path, api: bool = True):
        self.home = make_home(tmp_path)
        self.out = tmp_path / "out"
        self.dirs = {name: issue(self.home, "client", name, self.out) for name in ("alice", "bob", "carol")}
        # A refresh interval of an hour: only invalidate() can make the next answer "revoked".
        self.service = Service.open(load_settings(self.home, {"ocsp_refresh_seconds": 3600}))
        self.authority = self.service.authority(lambda: None)
        CrlRefresher(self.service, self.authority).publish_due()  # as `serve` does at start
        self.token = load_token(ensure_token(self.home)) if api else None
        self.worker = build_worker(self.service, self.authority, self.token)
        self.client = AsgiClient(self.worker.app)

    def serial(self, name: str) -> int:
        return serial_of(self.dirs[name])

    def auth(self, token: str | None = None) -> dict:
        return {"authorization": f"Bearer {token or self.token}"}

    def revoke(self, body, token: str | None = None, content_type: str = "application/json"):
        content = body if isinstance(body, (bytes, str)) else json.dumps(body)
        return self.client.post(REVOCATIONS, content=content,
                                headers={**self.auth(token), "content-type": content_type})

    def ocsp(self, name: str) -> cocsp.OCSPResponse:
        cert = x509.load_pem_x509_certificate((self.dirs[name] / "cert.pem").read_bytes())
        issuer = x509.load_pem_x509_certificate((self.home / "ca" / "intermediate.pem").read_bytes())
        response = self.client.post("/ocsp", content=request_der(cert, issuer),
                                    headers={"content-type": "application/ocsp-request"})
        assert response.status_code == 200
        return cocsp.load_der_ocsp_response(response.content)


@pytest.fixture()
def pki(tmp_path):
    return Pki(tmp_path)


def assert_problem(response, status: int, code: str, *fragments: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["code"] == code, body
    for fragment in fragments:
        assert fragment in body["detail"], body
    return body


def test_revocation_is_answered_by_ocsp_at_once_and_lands_in_crl_and_inventory(pki):
    alice = pki.serial("alice")
    assert pki.ocsp("alice").certificate_status is cocsp.OCSPCertStatus.GOOD  # now cached as good
    before = x509.load_der_x509_crl(pki.client.get("/crl/intermediate.crl").content)

    response = pki.revoke({"targets": ["alice"], "reason": "key-compromise"})

    assert response.status_code == 201, response.text
    data = response.json()
    assert [(r["serial"], r["issuer"], r["name"], r["reason"]) for r in data["revoked"]] == \
        [(f"{alice:x}", "intermediate", "alice", "key-compromise")]
    assert data["revoked"][0]["revoked_at"].endswith(("Z", "+00:00"))
    assert data["crl_numbers"]["intermediate"] > before.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert data["deployments"] == []
    # the very next OCSP answer of this worker, with an hour-long refresh interval
    answer = pki.ocsp("alice")
    assert answer.certificate_status is cocsp.OCSPCertStatus.REVOKED
    assert answer.revocation_reason is x509.ReasonFlags.key_compromise
    assert pki.ocsp("bob").certificate_status is cocsp.OCSPCertStatus.GOOD
    # the CRL served (and re-signed in the same operation) lists the serial
    crl = x509.load_der_x509_crl(pki.client.get("/crl/intermediate.crl").content)
    assert crl.get_revoked_certificate_by_serial_number(alice) is not None
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == data["crl_numbers"]["intermediate"]
    # the inventory, through the API's own view
    shown = pki.client.get(f"/api/v1/certificates/{alice:x}", headers=pki.auth())
    assert shown.status_code == 200
    assert [(c["status"], c["revocation_reason"], c["name"]) for c in shown.json()] == \
        [("revoked", "key-compromise", "alice")]
    assert shown.json()[0]["pem"].startswith("-----BEGIN CERTIFICATE-----")


def test_several_targets_by_serial_and_date(pki):
    bob, carol = pki.serial("bob"), pki.serial("carol")
    response = pki.revoke({"targets": [f"{bob:X}", "carol"], "at": "2026-01-02T03:04:05Z"})
    assert response.status_code == 201, response.text
    revoked = {r["serial"]: r for r in response.json()["revoked"]}
    assert set(revoked) == {f"{bob:x}", f"{carol:x}"}
    assert {r["reason"] for r in revoked.values()} == {"unspecified"}
    assert revoked[f"{bob:x}"]["revoked_at"].startswith("2026-01-02T03:04:05")
    assert pki.ocsp("carol").certificate_status is cocsp.OCSPCertStatus.REVOKED


@pytest.mark.parametrize("headers", [
    {},
    {"authorization": "Bearer not-the-token"},
    {"authorization": "Basic dXNlcjpwYXNz"},
    {"authorization": "Bearer"},
])
def test_missing_or_wrong_token_is_401_and_revokes_nothing(pki, headers):
    response = pki.client.post(REVOCATIONS, json={"targets": ["alice"]}, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 401 and "bearer token" in body["detail"]
    assert pki.token not in response.text
    assert pki.service.inventory.find_one("alice")[0].status == "valid"
    assert pki.client.get("/api/v1/certificates/alice", headers=headers).status_code == 401


def test_api_off_means_404_and_no_openapi(tmp_path):
    pki = Pki(tmp_path, api=False)
    response = pki.client.post(REVOCATIONS, json={"targets": ["alice"]},
                               headers={"authorization": "Bearer anything"})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert pki.client.get("/api/v1/openapi.json").status_code == 404
    assert pki.client.get("/api/v1/certificates/alice").status_code == 404
    assert not token_path(pki.home).exists()
    assert pki.service.inventory.find_one("alice")[0].status == "valid"


def test_unknown_target_is_404(pki):
    assert_problem(pki.revoke({"targets": ["nobody"]}), 404, "not-found", "nobody: no certificate")
    assert_problem(pki.client.get("/api/v1/certificates/nobody", headers=pki.auth()), 404, "not-found")


def test_twice_revoked_is_409_with_serial(pki):
    alice = pki.serial("alice")
    assert pki.revoke({"targets": ["alice"]}).status_code == 201
    body = assert_problem(pki.revoke({"targets": [f"{alice:x}"]}), 409, "already-revoked",
                          f"{alice:x}", "already revoked")
    assert "hint" in body


def test_a_name_with_two_live_certificates_revokes_both(pki):
    again = serial_of(issue(pki.home, "client", "alice", pki.out))
    response = pki.revoke({"targets": ["alice"]})
    assert response.status_code == 201, response.text
    assert {r["serial"] for r in response.json()["revoked"]} == {f"{pki.serial('alice'):x}", f"{again:x}"}
    assert {r.status for r in pki.service.inventory.find("alice")} == {"revoked"}


def test_one_bad_target_refuses_the_batch(pki):
    assert_problem(pki.revoke({"targets": ["bob", "nobody"]}), 404, "not-found")
    assert pki.ocsp("bob").certificate_status is cocsp.OCSPCertStatus.GOOD


@pytest.mark.parametrize("body, fragment", [
    ({"targets": ["alice"], "reason": "stolen"}, "unknown revocation reason 'stolen'"),
    ('{"targets": ["alice"', "not JSON"),
    ({"targets": ["alice"], "at": "2999-01-01T00:00:00Z"}, "is in the future"),
    ("[" * 30_000 + "]" * 30_000, "too deeply"),
    ('{"targets": ' + "[" * 5_000 + "]" * 5_000 + "}", "too deeply"),
])
def test_bad_input_is_400(pki, body, fragment):
    body = assert_problem(pki.revoke(body), 400, "bad-input", fragment)
    assert body.get("hint")
    assert pki.service.inventory.find_one("alice")[0].status == "valid"


@pytest.mark.parametrize("body, fragment", [
    ({"targets": []}, "targets"),
    ({"targets": "alice"}, "targets"),
    ({"target": ["alice"]}, "target"),
    ({"targets": ["alice"], "at": "yesterday"}, "at"),
    ({"targets": ["alice"], "reason": 1}, "reason"),
    ([1, 2], "body"),
])
def test_a_body_of_the_wrong_shape_is_422(pki, body, fragment):
    body = assert_problem(pki.revoke(body), 422, "invalid-request", fragment)
    assert body.get("hint")
    assert pki.service.inventory.find_one("alice")[0].status == "valid"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_only_json_bodies_415(pki, content_type):
    response = pki.revoke({"targets": ["alice"]}, content_type=content_type)
    assert response.status_code == 415 and response.json()["status"] == 415
    assert "application/json" in response.json()["detail"]


def test_json_with_charset_is_accepted(pki):
    assert pki.revoke({"targets": ["alice"]}, content_type="application/json; charset=utf-8").status_code == 201


def test_oversized_body_is_413(pki):
    response = pki.revoke({"targets": ["x" * 70_000]})
    assert response.status_code == 413 and response.json()["status"] == 413


def test_openapi_document_describes_the_api(pki):
    response = pki.client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    post = spec["paths"]["/api/v1/revocations"]["post"]
    assert {"201", "400", "401", "404", "409", "415"} <= set(post["responses"])
    assert "targets" in post["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert "/api/v1/certificates/{serial_or_name}" in spec["paths"]
    assert any(s.get("scheme") == "bearer" for s in spec["components"]["securitySchemes"].values())


def test_token_file_is_private_stable_and_never_logged(pki, caplog):
    path = token_path(pki.home)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert ensure_token(pki.home) == path and load_token(path) == pki.token  # not replaced
    assert len(pki.token) >= 43  # token_urlsafe(32)
    with caplog.at_level(logging.DEBUG):
        pki.revoke({"targets": ["alice"]})
        pki.revoke({"targets": ["alice"]})
        pki.revoke({"targets": ["alice"]}, token="wrong")
        pki.client.get("/api/v1/certificates/alice", headers=pki.auth())
    assert pki.token not in caplog.text
    banner = "\n".join(_banner("http://127.0.0.1:1", {"root": None}, 1, path))
    assert str(path) in banner and pki.token not in banner


def test_token_file_readable_by_others_or_empty_is_refused(tmp_path):
    path = tmp_path / "api-token"
    path.write_text("secret-value\n")
    path.chmod(0o644)
    with pytest.raises(BadInput) as refused:
        load_token(path)
    assert "readable by others" in refused.value.message and "secret-value" not in refused.value.message
    path.chmod(0o600)
    assert load_token(path) == "secret-value"
    path.write_text("")
    with pytest.raises(BadInput, match="is empty"):
        load_token(path)


def test_bearer_matching():
    assert bearer_matches("Bearer abc", "abc")
    # RFC 6750 §2.1 as written, nothing else (tests/security/test_api_tokens_hostile.py has every spelling)
    assert not bearer_matches("bearer abc", "abc") and not bearer_matches("Bearer  abc", "abc")
    assert not bearer_matches(None, "abc") and not bearer_matches("Bearer abd", "abc")
    assert not bearer_matches("Basic abc", "abc") and not bearer_matches("abc", "abc")


def test_serve_refuses_a_token_file_readable_by_others(tmp_path, capsys):
    from mtlskit.cli.app import main

    home = make_home(tmp_path)
    path = token_path(home)
    path.write_text("a-secret-token-value\n")
    path.chmod(0o640)
    capsys.readouterr()
    assert main(["--home", str(home), "serve", "--api", "--port", "0"]) == 2
    captured = capsys.readouterr()
    assert f"error: the API token file {path} is readable by others (mode 0640)" in captured.err
    assert "hint: chmod 600" in captured.err
    assert "a-secret-token-value" not in captured.out + captured.err
