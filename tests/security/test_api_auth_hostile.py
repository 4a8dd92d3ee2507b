"""The REST API from an attacker's side: tokens in every wrong spelling and place, revoked
and expired tokens, role escalation, hostile JSON, client certificates that must not count,
and the token comparison that must not leak through timing. Nothing refused writes anything."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest
from cryptography import x509

from mtlskit.api import token as token_module
from mtlskit.api.token import bearer_token, create_api_token
from tests.support_crl import issue
from tests.support_deploy import CLIENT, make_ca, make_leaf
from tests.support_rest import API, assert_problem, build_world

pytestmark = pytest.mark.security

WRITES = [("/certificates", {"profile": "client", "name": "escalated"}),
          ("/sign", {"profile": "client", "csr": "-----BEGIN CERTIFICATE REQUEST-----"}),
          ("/certificates/cert-nobody/renew", {}),
          ("/revocations", {"targets": ["cert-nobody"]})]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(tmp_path_factory.mktemp("rest-hostile"))


@pytest.fixture()
def unchanged(world):
    """The inventory (every certificate and its status) and the audit trail are the same after the test."""
    def snapshot():
        return ([(r.serial, r.status, r.superseded_by) for r in world.service.inventory.query(dt.datetime.now(dt.timezone.utc))],
                len(world.service.inventory.events(limit=100_000)))

    before = snapshot()
    yield
    assert snapshot() == before


def _spellings(token: str) -> list:
    return [
        [("authorization", f"bearer {token}")],
        [("authorization", f"BEARER {token}")],
        [("authorization", f"Bearer  {token}")],
        [("authorization", f" Bearer {token}")],
        [("authorization", f"Bearer {token} ")],
        [("authorization", f"Bearer\t{token}")],
        [("authorization", f"Bearer:{token}")],
        [("authorization", f"Bearer: {token}")],
        [("authorization", f"Token {token}")],
        [("authorization", f"Basic {token}")],
        [("authorization", token)],
        [("authorization", f"Bearer {token}x")],
        [("authorization", f"Bearer {token[:-1]}")],
        [("authorization", f"Bearer {token},Bearer {token}")],
        [("authorization", f"Bearer {token}"), ("authorization", f"Bearer {token}")],  # two fields, both right
        [("authorization", "Bearer wrong"), ("authorization", f"Bearer {token}")],
        [("authorization", f"Bearer {token}"), ("authorization", "Bearer wrong")],
        [("x-authorization", f"Bearer {token}")],
        [("authorisation", f"Bearer {token}")],
        [("cookie", f"token={token}")],
        [("x-api-key", token)],
    ]


@pytest.mark.parametrize("index", range(21))
def test_a_token_in_any_other_spelling_is_401(world, unchanged, index):
    spelling = _spellings(world.tokens["admin"])[index]
    for path, body in WRITES:
        response = world.client.post(API + path, content=json.dumps(body),
                                     headers=[("content-type", "application/json"), *spelling])
        assert_problem(response, 401, "unauthenticated")
    assert_problem(world.client.get(API + "/certificates", headers=spelling), 401, "unauthenticated")


@pytest.mark.parametrize("parameter", ["access_token", "token", "bearer", "authorization", "api_key"])
def test_a_token_in_the_query_string_or_body_is_not_read(world, unchanged, parameter):
    token = world.tokens["admin"]
    assert_problem(world.client.get(API + "/crls", params={parameter: token}), 401, "unauthenticated")
    response = world.client.post(API + "/revocations", params={parameter: f"Bearer {token}"},
                                 content=json.dumps({"targets": ["cert-nobody"], parameter: token}),
                                 headers={"content-type": "application/json"})
    assert_problem(response, 401, "unauthenticated")


def test_refusals_are_logged_without_the_token(world, caplog):
    import logging

    token = world.tokens["admin"]
    with caplog.at_level(logging.WARNING, logger="mtlskit.serve"):
        world.client.get(API + "/crls", headers={"authorization": f"bearer {token}"})
        world.client.get(API + "/crls", headers={"authorization": f"Bearer {token}x"})
        world.post("/revocations", {"targets": ["cert-nobody"]}, "read")
    assert "GET /api/v1/crls from" in caplog.text and "token:t-read has the role read" in caplog.text
    assert token not in caplog.text and token[4:20] not in caplog.text


def test_the_exact_spelling_is_accepted(world):
    # the control: the token of the spellings above is a good one
    assert world.client.get(API + "/crls", headers={"authorization": f"Bearer {world.tokens['read']}"}).status_code == 200


def test_revoked_and_expired_tokens_are_401_on_every_route(world):
    from mtlskit.clock import FixedClock
    from mtlskit.service import Service
    from mtlskit.store.api_tokens import revoke_api_token

    revoked, _ = create_api_token(world.service, "gone", "admin")
    revoke_api_token(world.service.inventory.db, "gone", world.service.clock.now())
    past = Service(world.service.settings, FixedClock(dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=2)))
    expired, _ = create_api_token(past, "stale", "admin", dt.timedelta(hours=1))
    before = world.service.inventory.events(limit=100_000)
    for token, state in ((revoked, "revoked"), (expired, "expired")):
        headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
        for path, body in WRITES:
            assert_problem(world.client.post(API + path, content=json.dumps(body), headers=headers), 401,
                           "unauthenticated", state)
    assert world.service.inventory.events(limit=100_000) == before


@pytest.mark.parametrize("role, path, body", [
    ("read", *WRITES[0]), ("read", *WRITES[1]), ("read", *WRITES[2]), ("read", *WRITES[3]),
    ("issue", *WRITES[3]),
])
def test_role_escalation_is_403(world, unchanged, role, path, body):
    assert_problem(world.post(path, body, role), 403, "forbidden", f"has the role {role!r}")


def test_a_403_reveals_nothing_about_the_target(world, unchanged):
    # the role is checked before the body is read: a read token learns nothing of what exists
    exists = world.post("/revocations", {"targets": ["cert-nobody"]}, "read")
    missing = world.post("/revocations", {"targets": ["no-such-certificate"]}, "read")
    assert exists.json() == missing.json()


# --- hostile JSON ----------------------------------------------------------------------------

HOSTILE_ISSUES = [
    ("x" * 70_000, 413),
    ("[" * 20_000 + "]" * 20_000, 400),
    ('{"profile": "client", "name": ' + "[" * 3_000 + "]" * 3_000 + "}", 400),
    ('{"profile": "client", "name": "a", "days": 1' + "0" * 5000 + "}", 400),
    ('{"profile": "client", "name": "a", "name": "b"}', 201),   # JSON lets the last one win; still one NAME
    ("\xff\xfe", 400),
    ("null", 422),
    ('"client"', 422),
    ('{"profile": "client", "name": "a", "days": 1.5}', 422),
    ('{"profile": "client", "name": "a", "days": true}', 422),
    ('{"profile": "client", "name": "a", "dns": "a.example"}', 422),
    ('{"profile": "client", "name": "a", "dns": [1]}', 422),
    ('{"profile": "client", "name": ["a"]}', 422),
    ('{"profile": "client", "name": "a", "subject": "O=Evil"}', 422),
    ('{"profile": "client", "name": "a", "subject": {"cn": "admin"}}', 422),
    ('{"profile": "client", "name": "a", "extensions": [{"oid": "2.5.29.19", "ca": true}]}', 422),
    ('{"profile": "client", "name": "a", "__proto__": {}}', 422),
    ('{"profile": "client", "name": "' + "a" * 2000 + '"}', 422),
    ('{"profile": "server", "name": "a", "dns": ' + json.dumps([f"h{i}.example" for i in range(101)]) + "}", 422),
]


@pytest.mark.parametrize("index", range(len(HOSTILE_ISSUES)))
def test_hostile_json_bodies(world, index):
    body, status = HOSTILE_ISSUES[index]
    before = world.service.inventory.count()
    response = world.client.post(API + "/certificates", content=body.encode("utf-8", "surrogateescape")
                                 if isinstance(body, str) else body,
                                 headers={"content-type": "application/json", **world.auth("issue")})
    assert response.status_code == status, response.text
    if status == 201:
        assert response.json()["name"] == "b" and world.service.inventory.count() == before + 1
        return
    assert response.headers["content-type"] == "application/problem+json"
    assert world.service.inventory.count() == before
    assert len(response.content) < 2_000  # the problem never echoes the body back


@pytest.mark.parametrize("name", ["a\nb", "a\x00b", "a\rb", "a\tb", "../../etc/passwd", "a/b", "", " ", "-rf",
                                  "\u202eexe.txt", "a\u0085b"])
def test_names_the_cli_refuses_are_refused(world, unchanged, name):
    response = world.post("/certificates", {"profile": "client", "name": name}, "issue")
    assert response.status_code in (400, 422), response.text
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("field, value", [
    ("dns", "*.*.example"), ("dns", "a..example"), ("dns", "exa_mple.com\n"), ("dns", "-a.example"),
    ("dns", "a.example\x00.evil"), ("ip", "1.2.3"), ("ip", "::g"), ("email", "no-at-sign"),
    ("email", "a@b@c"), ("uri", "not a uri"), ("uri", "https://a.example/\n"), ("dns", "x" * 300 + ".example"),
])
def test_sans_the_cli_refuses_are_refused(world, unchanged, field, value):
    response = world.post("/certificates", {"profile": "server", "name": "san-test", field: [value]}, "issue")
    assert response.status_code in (400, 403), response.text
    assert response.headers["content-type"] == "application/problem+json"


def test_a_csr_asking_to_be_a_ca_gets_a_leaf(world):
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wannabe-ca")]))
           .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
           .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode())
    response = world.post("/sign", {"csr": csr, "profile": "client"}, "issue")
    assert response.status_code == 201, response.text
    certificate = x509.load_pem_x509_certificate(response.json()["certificate"].encode())
    assert certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False


# --- client certificates ------------------------------------------------------------------------------

def test_client_certificates_that_must_not_authenticate(world, unchanged):
    import glob

    def pem_of(name):
        return open(sorted(glob.glob(str(world.out / f"{name}-*")))[0] + "/cert.pem").read()

    stranger = make_leaf(make_ca("Other CA"), "cert-admin", CLIENT)  # the admin's NAME, another CA
    expired = make_leaf(make_ca("Old CA"), "cert-admin", CLIENT,
                        not_after=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1))
    for pem, why in ((stranger.pem().decode(), "not in this CA's inventory"),
                     (expired.pem().decode(), "not in this CA's inventory"),
                     (pem_of("web.example"), "clientAuth")):
        client = world.as_certificate(pem)
        for path, body in WRITES:
            assert_problem(client.post(API + path, json=body), 401, "unauthenticated", why)
    # garbage in the scope is a bug of the TLS layer, never a way in
    assert_problem(world.as_certificate("not a certificate").get(API + "/crls"), 401, "unauthenticated")


def test_an_expired_inventory_certificate_is_refused(world, unchanged):
    from mtlskit.api.auth import certificate_refusal

    pem = (sorted(world.out.glob("cert-admin-*"))[0] / "cert.pem").read_bytes()
    certificate = x509.load_pem_x509_certificate(pem)
    later = certificate.not_valid_after_utc + dt.timedelta(seconds=1)
    assert certificate_refusal(certificate, world.service.inventory, later) == "the client certificate is expired"


# --- timing ------------------------------------------------------------------------------------------------

def test_tokens_are_found_by_their_hash_and_compared_in_constant_time(world, monkeypatch):
    """No comparison ever runs over a presented token and a stored one with ``==``: API
    tokens are looked up by SHA-256 (the database never sees the token, nor compares a
    secret byte by byte), and the HOME/api-token file is compared with hmac.compare_digest."""
    from mtlskit.store.api_tokens import find_api_token

    token = world.tokens["read"]
    with world.service.inventory.db.read() as tx:
        stored = tx.all("SELECT token_sha256 FROM api_tokens")
    assert (hashlib.sha256(token.encode()).hexdigest(),) in stored
    assert all(token not in row[0] for row in stored)
    assert find_api_token(world.service.inventory.db, hashlib.sha256(token.encode()).hexdigest()).name == "t-read"

    compared = []
    real = token_module.hmac.compare_digest
    monkeypatch.setattr(token_module.hmac, "compare_digest", lambda a, b: compared.append((a, b)) or real(a, b))
    assert world.client.get(API + "/crls", headers={"authorization": f"Bearer {world.file_token}"}).status_code == 200
    assert compared and compared[0][1] == world.file_token.encode()


def test_bearer_grammar():
    assert bearer_token("Bearer abc-_.~+/=") == "abc-_.~+/="
    for value in ("Bearer ", "Bearer a b", "Bearer a\n", "Bearer a\x00", "Bearer é", "Bearer =abc"):
        assert bearer_token(value) is None, value
