"""The REST API (/api/v1) in-process on a real CA home: every route, its role, its
refusals as problem+json, and the audit trail saying who did it."""

from __future__ import annotations

import base64
import datetime as dt
import json
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from mtlskit.api.token import create_api_token
from tests.support_crl import cli, issue
from tests.support_rest import API, assert_problem, build_world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(tmp_path_factory.mktemp("rest"))


def _csr(cn: str, key=None, dns: tuple[str, ...] = ()) -> tuple[str, object]:
    key = key or ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
    if dns:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode(), key


# --- OpenAPI ---------------------------------------------------------------------------------

def test_openapi_documents_every_route_with_bodies_and_the_bearer_scheme(world):
    response = world.client.get(API + "/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    paths = spec["paths"]
    assert {"/api/v1/certificates", "/api/v1/certificates/{serial_or_name}", "/api/v1/sign",
            "/api/v1/certificates/{target}/renew", "/api/v1/revocations", "/api/v1/crls",
            "/api/v1/deployments"} <= set(paths)
    issue_body = paths["/api/v1/certificates"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert issue_body["properties"]["profile"]["enum"] == ["server", "client", "peer"]
    assert "$ref" not in json.dumps(issue_body)  # inlined: resolvable inside the document
    assert {"401", "403"} <= set(paths["/api/v1/revocations"]["post"]["responses"])
    listed = {p["name"] for p in paths["/api/v1/certificates"]["get"]["parameters"]}
    assert listed == {"name", "status", "profile", "issuer", "expiring", "limit", "cursor"}
    assert any(s.get("scheme") == "bearer" for s in spec["components"]["securitySchemes"].values())


def test_the_openapi_document_is_valid_for_an_independent_validator(world):
    from openapi_spec_validator import validate

    validate(world.client.get(API + "/openapi.json").json())  # raises on any error


# --- list / search / show -----------------------------------------------------------------------

def test_list_pages_follow_the_cursor_soonest_expiry_first(world):
    for n in range(7):
        issue(world.home, "client", f"fleet-{n}", world.out, "--days", str(30 + n))
    seen, cursor, totals = [], None, set()
    while True:
        response = world.get("/certificates", "read", params={"name": "fleet-*", "limit": "3",
                                                               **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        page = response.json()
        totals.add(page["total"])
        seen += [item["name"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"fleet-{n}" for n in range(7)]  # each once, soonest expiry first
    assert totals == {7}


def test_list_filters(world):
    def names(**params):
        response = world.get("/certificates", "read", params=params)
        assert response.status_code == 200, response.text
        return {item["name"] for item in response.json()["items"]}

    assert names(profile="server") == {"web.example"}
    assert names(name="cert-admin") == {"cert-admin"}
    assert names(name="cert-*") >= {"cert-admin", "cert-revoker", "cert-nobody"}
    assert names(name="cert-admi*") == {"cert-admin"} and names(name="CERT-*") == set()  # case counts
    assert names(name="cert-admin*") == {"cert-admin"} and names(name="cert-admin-*") == set()
    issue(world.home, "client", "short-lived", world.out, "--days", "20")
    assert "short-lived" in names(expiring="21d") and "cert-admin" not in names(expiring="21d")
    assert "short-lived" not in names(expiring="19d")
    assert names(status="valid", name="ops-reader") == {"ops-reader"}
    assert names(status="revoked", name="ops-reader") == set()


@pytest.mark.parametrize("params, fragment", [
    ({"status": "fine"}, "unknown status"),
    ({"expiring": "soon"}, "expiring"),
    ({"limit": "0"}, "limit"),
    ({"limit": "1001"}, "limit"),
    ({"cursor": "bm90IGEgY3Vyc29y"}, "cursor"),
    ({"cursor": "%%%"}, "cursor"),
    ({"access_token": "x"}, "unknown query parameter"),
    ({"sort": "name"}, "unknown query parameter"),
])
def test_bad_filters_are_422(world, params, fragment):
    assert_problem(world.get("/certificates", "read", params=params), 422, "invalid-request", fragment)


def test_show_and_404(world):
    response = world.get("/certificates/cert-admin", "read")
    assert response.status_code == 200
    [record] = response.json()
    assert record["name"] == "cert-admin" and record["pem"].startswith("-----BEGIN CERTIFICATE-----")
    assert_problem(world.get("/certificates/nobody-here", "read"), 404, "not-found")
    assert_problem(world.get("/nothing-here", "read"), 404)


# --- issue ----------------------------------------------------------------------------------------

def test_issue_hands_the_key_over_once_and_records_who(world):
    response = world.post("/certificates", {"profile": "server", "name": "api-web", "dns": ["api-web.example"],
                                            "days": 30, "subject": {"org": "Ops Ltd"}}, "issue")
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    certificate = x509.load_pem_x509_certificate(body["certificate"].encode())
    key = serialization.load_pem_private_key(body["private_key"].encode(), None)
    assert key.public_key() == certificate.public_key()
    sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["api-web.example"]
    assert certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Ops Ltd"
    assert certificate.not_valid_after_utc - certificate.not_valid_before_utc <= dt.timedelta(days=30, minutes=10)
    [record] = world.service.inventory.find("api-web")
    assert record.directory is None and record.serial_hex == body["serial"]  # the CA keeps no key, no files
    assert not any((world.home / "scratch").iterdir())  # the UI's workflow: its scratch directory is gone
    [event] = [e for e in world.events("issue") if e["serial"] == body["serial"]]
    assert event["detail"]["by"] == "token:t-issue"
    # the chain verifies with openssl, the independent judge
    chain_file = world.out / "api-web-chain.pem"
    chain_file.write_text(body["chain"])
    (world.out / "api-web-ca.pem").write_text(body["ca"])
    (world.out / "api-web.pem").write_text(body["certificate"])
    verdict = subprocess.run(["openssl", "verify", "-CAfile", str(world.out / "api-web-ca.pem"), "-untrusted",
                              str(chain_file), str(world.out / "api-web.pem")], capture_output=True, text=True)
    assert verdict.returncode == 0, verdict.stderr


def test_concurrent_issues_each_get_their_own_key(world):
    import asyncio

    import httpx

    async def issue_all():
        transport = httpx.ASGITransport(app=world.worker.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return await asyncio.gather(*(client.post(API + "/certificates", json={"profile": "peer", "name": f"burst-{n}",
                                                                               "dns": [f"burst-{n}.example"]},
                                                      headers=world.auth("issue")) for n in range(8)))

    responses = asyncio.run(issue_all())
    assert [r.status_code for r in responses] == [201] * 8
    keys = {r.json()["private_key"] for r in responses}
    serials = {r.json()["serial"] for r in responses}
    assert len(keys) == 8 and len(serials) == 8
    assert {r.name for r in world.service.inventory.query(dt.datetime.now(dt.timezone.utc), profile="peer")} >= \
        {f"burst-{n}" for n in range(8)}


@pytest.mark.parametrize("profile", ["modern", "legacy"])
def test_issue_as_pkcs12_with_the_callers_password(world, profile):
    response = world.post("/certificates", {"profile": "client", "name": f"phone-{profile}",
                                            "pkcs12": {"password": "correct horse", "profile": profile}}, "issue")
    assert response.status_code == 201, response.text
    body = response.json()
    assert "private_key" not in body
    bundle = base64.b64decode(body["pkcs12"])
    key, certificate, extra = pkcs12.load_key_and_certificates(bundle, b"correct horse")
    assert certificate.serial_number == int(body["serial"], 16) and key.public_key() == certificate.public_key()
    path = world.out / f"phone-{profile}.p12"
    path.write_bytes(bundle)
    judged = subprocess.run(["openssl", "pkcs12", "-in", str(path), "-passin", "pass:correct horse", "-noout",
                             *(["-legacy"] if profile == "legacy" else [])], capture_output=True, text=True)
    assert judged.returncode == 0, judged.stderr
    wrong = subprocess.run(["openssl", "pkcs12", "-in", str(path), "-passin", "pass:wrong", "-noout",
                            *(["-legacy"] if profile == "legacy" else [])], capture_output=True, text=True)
    assert wrong.returncode != 0


@pytest.mark.parametrize("body, status, fragment", [
    ({"profile": "server", "name": "bad name\n"}, 400, "NAME"),
    ({"profile": "server", "name": "x", "dns": ["exa mple.com"]}, 400, "exa mple.com"),
    ({"profile": "server", "name": "x", "ip": ["999.1.1.1"]}, 400, "999.1.1.1"),
    ({"profile": "client", "name": "x", "key_type": "dsa-1024"}, 400, "dsa-1024"),
    ({"profile": "client", "name": "x", "days": 100000}, 403, "at most 825 days"),   # policy
    ({"profile": "client", "name": "x", "subject": {"country": "France"}}, 400, "country"),
    ({"profile": "ca", "name": "x"}, 422, "profile"),
    ({"profile": "client", "name": "x", "days": "30"}, 422, "days"),
    ({"profile": "client", "name": 7}, 422, "name"),
    ({"profile": "client", "name": "x", "is_ca": True}, 422, "is_ca"),
    ({"profile": "client", "name": "x", "pkcs12": {"password": ""}}, 422, "pkcs12.password"),
    ({"profile": "client", "name": "x", "pkcs12": {"password": "a\u0000b"}}, 422, "pkcs12.password"),
    ({"profile": "client"}, 422, "name"),
])
def test_issue_refusals_sign_nothing(world, body, status, fragment):
    before = world.service.inventory.count()
    problem = assert_problem(world.post("/certificates", body, "issue"), status)
    assert fragment in problem["detail"]
    assert world.service.inventory.count() == before
    scratch = world.home / "scratch"
    assert not scratch.exists() or not any(scratch.iterdir())


# --- sign a CSR -------------------------------------------------------------------------------------

def test_sign_a_csr_and_refuse_a_forged_one(world):
    csr, key = _csr("signed.example", dns=("signed.example",))
    response = world.post("/sign", {"csr": csr, "profile": "server"}, "issue")
    assert response.status_code == 201, response.text
    body = response.json()
    certificate = x509.load_pem_x509_certificate(body["certificate"].encode())
    assert certificate.public_key() == key.public_key() and body["name"] == "signed.example"
    [event] = [e for e in world.events("sign") if e["serial"] == body["serial"]]
    assert event["detail"]["by"] == "token:t-issue"
    tampered = csr.replace(csr.splitlines()[3], csr.splitlines()[3][:-4] + "AAAA")
    assert_problem(world.post("/sign", {"csr": tampered, "profile": "server"}, "issue"), 400)
    assert_problem(world.post("/sign", {"csr": "not a csr", "profile": "server"}, "issue"), 400)
    assert_problem(world.post("/sign", {"csr": "é" * 10, "profile": "server"}, "issue"), 400)
    assert_problem(world.post("/sign", {"csr": csr, "profile": "server", "name": "a\u0000b"}, "issue"), 400)


# --- renew ---------------------------------------------------------------------------------------------

def test_renew_with_a_csr_then_the_old_one_is_refused(world):
    issued = world.post("/certificates", {"profile": "client", "name": "renew-me"}, "issue").json()
    csr, key = _csr("renew-me")
    response = world.post(f"/certificates/serial:{issued['serial']}/renew", {"csr": csr}, "issue")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["renewed"] == issued["serial"]
    successor = x509.load_pem_x509_certificate(body["certificate"]["certificate"].encode())
    assert successor.public_key() == key.public_key()
    assert successor.subject == x509.load_pem_x509_certificate(issued["certificate"].encode()).subject
    again = world.post(f"/certificates/serial:{issued['serial']}/renew", {"csr": _csr("renew-me")[0]}, "issue")
    assert_problem(again, 403, "policy", "already renewed")
    [event] = [e for e in world.events("renew") if e["serial"] == body["certificate"]["serial"]]
    assert event["detail"]["by"] == "token:t-issue"


def test_renew_with_a_new_key_handed_over(world):
    issued = world.post("/certificates", {"profile": "client", "name": "renew-key", "key_type": "ec-p384"}, "issue").json()
    response = world.post("/certificates/renew-key/renew", {"new_key": True}, "issue")
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    successor = x509.load_pem_x509_certificate(body["certificate"]["certificate"].encode())
    key = serialization.load_pem_private_key(body["private_key"].encode(), None)
    assert key.public_key() == successor.public_key() and key.curve.name == "secp384r1"  # the same key type
    assert body["renewed"] == issued["serial"] and body["directory"] is None
    # an API-issued certificate has no directory: renewing "as the CLI" says what to send instead
    plain = world.post("/certificates", {"profile": "client", "name": "renew-nodir"}, "issue").json()
    assert_problem(world.post(f"/certificates/serial:{plain['serial']}/renew", {}, "issue"), 400, "bad-input",
                   "no directory was recorded")


def test_renew_in_place_as_the_cli_does(world):
    directory = issue(world.home, "client", "in-place", world.out)
    before = (directory / "cert.pem").read_text()
    response = world.post("/certificates/in-place/renew", {}, "issue")
    assert response.status_code == 201, response.text
    assert response.json()["directory"] == str(directory)
    after = (directory / "cert.pem").read_text()
    assert after != before and x509.load_pem_x509_certificate(after.encode()).serial_number == \
        int(response.json()["certificate"]["serial"], 16)


def test_renew_refusals(world):
    assert_problem(world.post("/certificates/nobody-at-all/renew", {}, "issue"), 404, "not-found")
    assert_problem(world.post("/certificates/x/renew", {"csr": "x", "revoke_old": True}, "issue"), 422)
    assert_problem(world.post("/certificates/x/renew", {"csr": "x", "new_key": True}, "issue"), 422)
    assert_problem(world.post("/certificates/x/renew", {"new_key": 1}, "issue"), 422)
    assert_problem(world.post("/certificates/x/renew", {"reuse_key": True}, "issue"), 422)


# --- revoke, 409, audit ---------------------------------------------------------------------------------

def test_revoke_records_who_and_twice_is_409(world):
    issue(world.home, "client", "to-revoke", world.out)
    response = world.post("/revocations", {"targets": ["to-revoke"], "reason": "key-compromise"}, "revoke")
    assert response.status_code == 201, response.text
    serial = response.json()["revoked"][0]["serial"]
    [event] = [e for e in world.events("revoke") if e["serial"] == serial]
    assert event["detail"]["by"] == "token:t-revoke"
    again = world.post("/revocations", {"targets": [f"serial:{serial}"]}, "revoke")
    assert_problem(again, 409, "already-revoked")


def test_the_home_api_token_is_an_admin_token(world):
    issue(world.home, "client", "file-token-target", world.out)
    response = world.client.post(API + "/revocations", json={"targets": ["file-token-target"]},
                                 headers={"authorization": f"Bearer {world.file_token}"})
    assert response.status_code == 201, response.text
    serial = response.json()["revoked"][0]["serial"]
    [event] = [e for e in world.events("revoke") if e["serial"] == serial]
    assert event["detail"]["by"] == "token:api-token"


# --- roles -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("role, method, path, body, allowed", [
    ("read", "GET", "/certificates", None, True),
    ("read", "GET", "/crls", None, True),
    ("read", "POST", "/certificates", {"profile": "client", "name": "r"}, False),
    ("read", "POST", "/sign", {"profile": "client", "csr": "x"}, False),
    ("read", "POST", "/certificates/x/renew", {}, False),
    ("read", "POST", "/revocations", {"targets": ["cert-nobody"]}, False),
    ("issue", "POST", "/revocations", {"targets": ["cert-nobody"]}, False),
    ("revoke", "POST", "/revocations", {"targets": ["nobody-x"]}, True),   # allowed: then 404
])
def test_each_route_needs_its_role(world, role, method, path, body, allowed):
    response = world.get(path, role) if method == "GET" else world.post(path, body, role)
    if allowed:
        assert response.status_code in (200, 404), response.text
    else:
        problem = assert_problem(response, 403, "forbidden", f"token:t-{role}")
        assert "cert-nobody" in {r.name for r in world.service.inventory.find("cert-nobody")
                                 if r.status == "valid"}
        assert problem["title"] == "Forbidden"


def test_status_routes(world):
    crls = world.get("/crls", "read").json()
    assert {c["ca"] for c in crls} == {"root", "intermediate"}
    assert all(c["crl_number"] >= 1 and not c["stale"] for c in crls)
    assert cli(world.home, "deploy", "nginx", "--name", "web.example", "--dir", str(world.out / "nginx"),
               "--listen", "127.0.0.1:8443", "--upstream", "http://127.0.0.1:9000") == 0
    [deployment] = world.get("/deployments", "read").json()
    assert (deployment["server"], deployment["name"], deployment["directory"]) == \
        ("nginx", "web.example", str(world.out / "nginx"))
    assert deployment["options"]["listen"]


def test_whoami_and_the_audit_trail_for_admins(world):
    assert world.get("/whoami", "issue").json() == {"name": "t-issue", "role": "issue", "via": "token",
                                                   "by": "token:t-issue"}
    issued = world.post("/certificates", {"profile": "client", "name": "audited"}, "issue").json()
    events = world.get("/events", "admin", params={"limit": "50"})
    assert events.status_code == 200
    [event] = [e for e in events.json() if e["serial"] == issued["serial"]]
    assert event["action"] == "issue" and event["detail"]["by"] == "token:t-issue"
    assert_problem(world.get("/events", "revoke"), 403, "forbidden")
    assert_problem(world.get("/events", "admin", params={"limit": "0"}), 422, "invalid-request")
    assert_problem(world.get("/events", "admin", params={"since": "x"}), 422, "invalid-request")


# --- token lifecycle --------------------------------------------------------------------------------------

def test_a_revoked_token_is_refused_on_the_next_request(world):
    token, _ = create_api_token(world.service, "short-lived-ci", "read")
    headers = {"authorization": f"Bearer {token}"}
    assert world.client.get(API + "/crls", headers=headers).status_code == 200
    assert cli(world.home, "token", "api", "revoke", "short-lived-ci") == 0
    assert_problem(world.client.get(API + "/crls", headers=headers), 401, "unauthenticated", "revoked")


def test_an_expired_token_is_refused(world):
    from mtlskit.clock import FixedClock
    from mtlskit.service import Service

    past = Service(world.service.settings, FixedClock(dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=2)))
    token, _ = create_api_token(past, "yesterday", "admin", dt.timedelta(days=1))
    response = world.client.get(API + "/crls", headers={"authorization": f"Bearer {token}"})
    assert_problem(response, 401, "unauthenticated", "expired")


def test_last_used_is_recorded(world):
    from mtlskit.store.api_tokens import list_api_tokens

    world.get("/crls", "read")
    [stored] = [t for t in list_api_tokens(world.service.inventory.db) if t.name == "t-read"]
    assert stored.last_used_at is not None


# --- client certificates ---------------------------------------------------------------------------------

def _pem(world, name: str) -> str:
    directory = sorted(world.out.glob(f"{name}-*"))[0]
    return (directory / "cert.pem").read_text()


def test_a_mapped_client_certificate_acts_with_its_role(world):
    issue(world.home, "client", "cert-target", world.out)
    admin = world.as_certificate(_pem(world, "cert-admin"))
    response = admin.post(API + "/revocations", json={"targets": ["cert-target"]})
    assert response.status_code == 201, response.text
    serial = response.json()["revoked"][0]["serial"]
    [event] = [e for e in world.events("revoke") if e["serial"] == serial]
    assert event["detail"]["by"] == "certificate:cert-admin"
    reader = world.as_certificate(_pem(world, "ops-reader"))  # read by its OU
    assert reader.get(API + "/crls").status_code == 200
    assert_problem(reader.post(API + "/revocations", json={"targets": ["cert-nobody"]}), 403, "forbidden",
                   "certificate:ops-reader")


def test_client_certificates_that_do_not_count(world):
    nobody = world.as_certificate(_pem(world, "cert-nobody"))
    assert_problem(nobody.get(API + "/crls"), 403, "forbidden", "has no role")
    server = world.as_certificate(_pem(world, "web.example"))
    assert_problem(server.get(API + "/crls"), 401, "unauthenticated", "clientAuth")
    none = world.as_certificate(None)
    assert_problem(none.get(API + "/crls"), 401, "unauthenticated")


def test_a_revoked_client_certificate_is_refused_on_its_next_request(world):
    issue(world.home, "client", "cert-revoker", world.out)  # a second one: the first stays for other tests
    pem = (sorted(world.out.glob("cert-revoker-*"))[-1] / "cert.pem").read_text()
    revoker = world.as_certificate(pem)
    assert revoker.get(API + "/crls").status_code == 200
    serial = format(x509.load_pem_x509_certificate(pem.encode()).serial_number, "x")
    assert world.post("/revocations", {"targets": [f"serial:{serial}"]}, "revoke").status_code == 201
    assert_problem(revoker.get(API + "/crls"), 401, "unauthenticated", "revoked")


def test_a_bearer_token_wins_over_the_certificate(world):
    reader = world.as_certificate(_pem(world, "ops-reader"))
    response = reader.get(API + "/crls", headers={"authorization": "Bearer wrong"})
    assert_problem(response, 401, "unauthenticated")  # never falls back to the certificate


def test_a_failure_to_record_last_use_never_refuses_a_valid_token(world, monkeypatch, caplog):
    import logging

    from mtlskit.store import api_tokens

    def locked(*args):
        raise RuntimeError("database is locked")

    token, _ = create_api_token(world.service, "never-used-before", "read")
    monkeypatch.setattr(api_tokens, "touch_api_token", locked)
    with caplog.at_level(logging.WARNING, logger="mtlskit.serve"):
        response = world.client.get(API + "/crls", headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert "could not record the use of API token never-used-before" in caplog.text and token not in caplog.text
