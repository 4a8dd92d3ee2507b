"""The merged service attacked as one (issue 13): the REST API, /metrics, /authz and the web
UI in ONE worker, each credential tried where another kind is required, revocation reaching
every credential, and secrets kept out of answers, events and metrics.

In-process (httpx ASGI transport on a real CA home). The TLS layer is played by
:func:`_as_tls`, which puts a verified client certificate where `serve --tls-port` puts it
(``scope["extensions"]["tls"]``): what the app does with it is what is attacked here.
"""

from __future__ import annotations

import pytest

from mtlskit.api.token import create_api_token
from mtlskit.api.wiring import build_worker
from mtlskit.config import load_settings
from mtlskit.metrics.worker import MetricsOptions
from mtlskit.publish.refresher import CrlRefresher
from mtlskit.revoke.revoker import revoke
from mtlskit.service import Service
from mtlskit.ui.session import COOKIE
from mtlskit.ui.setup import UiSetup
from tests.support_crl import issue, make_home
from tests.support_ocsp import AsgiClient

pytestmark = pytest.mark.security

FILE_TOKEN = "file-token-" + "f" * 40
METRICS_TOKEN = "metrics-token-" + "m" * 40


class Combined:
    """One worker with --api, metrics behind a token, /authz and --ui; alice, carol admins by [roles]."""

    def __init__(self, root) -> None:
        self.home = make_home(root)
        with open(self.home / "mtlskit.toml", "a") as config:
            config.write('\n[roles]\nadmin = ["alice", "carol", "ou:Admins"]\nrevoke = ["ou:Ops"]\n')
        out = root / "out"
        self.dirs = {name: issue(self.home, "client", name, out) for name in ("alice", "bob", "carol")}
        self.settings = load_settings(self.home, {"ocsp_refresh_seconds": 3600})
        self.service = Service.open(self.settings)
        self.authority = self.service.authority(lambda: None)
        CrlRefresher(self.service, self.authority).publish_due()
        self.setup = UiSetup.prepare(self.settings, self.service.clock.now().timestamp())
        self.worker = build_worker(self.service, self.authority, api_token=FILE_TOKEN,
                                   metrics=MetricsOptions(token=METRICS_TOKEN), ui=self.setup)
        self.client = AsgiClient(self.worker.app)
        self.tls_clients = {name: AsgiClient(_as_tls(self.worker.app, self.pem(name))) for name in self.dirs}

    def pem(self, name: str) -> str:
        return (self.dirs[name] / "cert.pem").read_text()

    def ui_cookie(self) -> str:
        response = self.client.get(f"/ui/login?token={self.setup.login_link()}")
        assert response.status_code == 303
        return response.cookies[COOKIE]

    def api_token(self, name: str, role: str = "admin") -> str:
        token, _ = create_api_token(self.service, name, role)
        return token


def _as_tls(app, client_pem: str):
    """``app`` as the TLS listener calls it: the verified client certificate in the scope."""
    async def tls_app(scope, receive, send):
        if scope["type"] == "http":
            scope = {**scope, "scheme": "https", "extensions": {"tls": {
                "client_cert_chain": [client_pem], "client_cert_error": None,
                "tls_version": None, "cipher_suite": None}}}
        await app(scope, receive, send)
    return tls_app


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    return Combined(tmp_path_factory.mktemp("combined"))


def _bearer(token: str) -> dict:
    return {"authorization": f"Bearer {token}"}


# --- a credential of one kind where another is required ------------------------------------

def test_the_ui_session_cookie_does_not_authenticate_the_api(svc):
    cookie = svc.ui_cookie()
    for path in ("/api/v1/whoami", "/api/v1/certificates", "/api/v1/events"):
        response = svc.client.get(path, headers={"cookie": f"{COOKIE}={cookie}"})
        assert response.status_code == 401, path
        assert response.headers["content-type"] == "application/problem+json"


def test_a_cookie_named_like_the_ui_session_with_a_bearer_token_value_is_not_a_bearer(svc):
    token = svc.api_token("cookie-probe")
    response = svc.client.get("/api/v1/whoami", headers={"cookie": f"{COOKIE}={token}; token={token}"})
    assert response.status_code == 401


@pytest.mark.parametrize("which", ["api-token", "file-token", "metrics-token"])
def test_bearer_tokens_do_not_open_ui_pages_or_forms(svc, which):
    token = {"api-token": lambda: svc.api_token("ui-probe-" + which), "file-token": lambda: FILE_TOKEN,
             "metrics-token": lambda: METRICS_TOKEN}[which]()
    assert svc.client.get("/ui/certificates", headers=_bearer(token)).status_code == 401
    before = svc.service.inventory.count()
    response = svc.client.post("/ui/issue", headers=_bearer(token), data={
        "name": "by-bearer", "key_type": "ec-p256", "format": "p12-modern", "password": "pw-pw-pw-pw",
        "password2": "pw-pw-pw-pw"})
    assert response.status_code == 401 and svc.service.inventory.count() == before


def test_the_metrics_token_does_not_authenticate_the_api(svc):
    assert svc.client.get("/api/v1/whoami", headers=_bearer(METRICS_TOKEN)).status_code == 401


@pytest.mark.parametrize("which", ["api-token", "file-token"])
def test_api_tokens_do_not_open_a_protected_metrics(svc, which):
    token = svc.api_token("metrics-probe") if which == "api-token" else FILE_TOKEN
    assert svc.client.get("/metrics", headers=_bearer(token)).status_code == 401
    assert svc.client.get("/metrics", headers=_bearer(METRICS_TOKEN)).status_code == 200


def test_a_ui_session_cookie_does_not_open_a_protected_metrics(svc):
    assert svc.client.get("/metrics", headers={"cookie": f"{COOKIE}={svc.ui_cookie()}"}).status_code == 401


def test_a_client_certificate_counts_only_on_the_tls_listener(svc):
    # the plain port: no TLS extension, whatever header claims a certificate
    forged = {"x-ssl-client-cert": svc.pem("alice").replace("\n", " "), "x-client-verify": "SUCCESS",
              "ssl-client-cert": svc.pem("alice")}
    assert svc.client.get("/api/v1/whoami", headers=forged).status_code == 401
    assert svc.client.get("/ui/certificates", headers=forged).status_code == 401
    assert svc.tls_clients["alice"].get("/api/v1/whoami").json()["role"] == "admin"


def test_the_enrollment_routes_take_no_api_token(svc):
    token = svc.api_token("enroll-probe")
    for path in ("/enroll", "/api/v1/enroll", "/renew"):
        response = svc.client.post(path, headers=_bearer(token), content=b"x")
        assert response.status_code in (401, 403, 404, 405), (path, response.status_code)


# --- revocation and expiry reaching every credential ---------------------------------------

def test_a_ui_session_opened_by_a_client_certificate_ends_when_the_certificate_is_revoked(svc):
    carol = svc.tls_clients["carol"]
    first = carol.get("/ui/certificates")
    assert first.status_code == 200
    cookie = first.cookies[COOKIE]
    revoke(svc.service, svc.authority, ["carol"], "key-compromise")
    # the stolen cookie, over TLS with the revoked certificate, and over the plain port
    assert carol.get("/ui/certificates", headers={"cookie": f"{COOKIE}={cookie}"}).status_code == 401
    assert svc.client.get("/ui/certificates", headers={"cookie": f"{COOKIE}={cookie}"}).status_code == 401
    assert svc.client.get("/ui/issue", headers={"cookie": f"{COOKIE}={cookie}"}).status_code == 401


def test_a_revoked_api_token_is_refused_at_once(svc):
    from mtlskit.store.api_tokens import revoke_api_token

    token = svc.api_token("soon-revoked")
    assert svc.client.get("/api/v1/whoami", headers=_bearer(token)).status_code == 200
    revoke_api_token(svc.service.inventory.db, "soon-revoked", svc.service.clock.now())
    assert svc.client.get("/api/v1/whoami", headers=_bearer(token)).status_code == 401


# --- secrets kept out of answers, events, pages, metrics and logs --------------------------

P12_PASSWORD = "Pw-" + "q" * 20


def test_no_secret_reaches_events_history_metrics_or_logs(svc, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    api_token = svc.api_token("leak-probe")
    link = svc.setup.login_link()
    login = svc.client.get(f"/ui/login?token={link}")
    cookie = login.cookies[COOKIE]
    issued = svc.client.post("/api/v1/certificates", headers=_bearer(api_token), json={
        "profile": "client", "name": "leaky", "pkcs12": {"password": P12_PASSWORD, "profile": "legacy"}})
    assert issued.status_code in (200, 201), issued.text
    refused = svc.client.post("/api/v1/certificates", headers=_bearer(api_token), json={
        "profile": "client", "name": "leaky2", "pkcs12": {"password": P12_PASSWORD, "profile": "nope"}})
    assert refused.status_code == 422 and P12_PASSWORD not in refused.text
    csrf = _csrf(svc, cookie)
    svc.client.post("/ui/issue", headers={"cookie": f"{COOKIE}={cookie}"}, data={
        "name": "leaky-ui", "key_type": "ec-p256", "format": "p12-legacy", "password": P12_PASSWORD,
        "password2": P12_PASSWORD, "csrf": csrf})
    svc.client.get("/api/v1/whoami", headers=_bearer(api_token + "x"))
    svc.client.get("/authz", headers={"x-mtlskit-authz-secret": "authz-" + "s" * 30})
    seen = [svc.client.get("/api/v1/events?limit=1000", headers=_bearer(FILE_TOKEN)).text,
            svc.client.get("/metrics", headers=_bearer(METRICS_TOKEN)).text,
            svc.client.get(f"/ui/certificates?name=leaky", headers={"cookie": f"{COOKIE}={cookie}"}).text,
            svc.client.get("/api/v1/openapi.json").text,
            "\n".join(r.getMessage() + str(r.exc_info or "") for r in caplog.records if not r.name.startswith(("httpx", "asyncio")))]
    seen += [svc.client.get(f"/ui/certificates/intermediate/{r.serial_hex}", headers={"cookie": f"{COOKIE}={cookie}"}).text
             for name in ("leaky", "leaky-ui") for r in svc.service.inventory.by_name(name)]
    for secret in (P12_PASSWORD, api_token, link, cookie, FILE_TOKEN, METRICS_TOKEN, "s" * 30):
        assert not any(secret in text for text in seen), secret[:8]


def _csrf(svc, cookie: str) -> str:
    import re

    page = svc.client.get("/ui/issue", headers={"cookie": f"{COOKIE}={cookie}"}).text
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


# --- resource doors -------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/api/v1/certificates?limit=", "/api/v1/events?limit="])
@pytest.mark.parametrize("limit", ["9" * 5000, "0" * 4999 + "5", "1" * 30])
def test_a_huge_limit_is_a_422_not_a_500(svc, path, limit):
    response = svc.client.get(path + limit, headers=_bearer(FILE_TOKEN))
    assert response.status_code == 422 and response.headers["content-type"] == "application/problem+json"


def test_ui_paging_parameters_of_any_size_do_not_fail(svc):
    cookie = svc.ui_cookie()
    for query in ("after=" + "9" * 5000, "before=" + "9" * 5000, "after=-1", "sort=" + "x" * 5000):
        response = svc.client.get(f"/ui/certificates?{query}", headers={"cookie": f"{COOKIE}={cookie}"})
        assert response.status_code in (200, 422), (query[:20], response.status_code)


def test_the_route_label_of_metrics_does_not_grow_with_request_paths(svc):
    def series():
        text = svc.client.get("/metrics", headers=_bearer(METRICS_TOKEN)).text
        return {line.rsplit(" ", 1)[0] for line in text.splitlines() if line and not line.startswith("#")}

    series()   # the scrape counts itself: its own series exists from the second scrape on
    for i in range(3):
        svc.client.get(f"/nothing/{i}")
        svc.client.get(f"/api/v1/certificates/probe{i}", headers=_bearer(FILE_TOKEN))
        svc.client.get(f"/crl/x{i}.crl")
        svc.client.get(f"/ui/certificates/intermediate/{i}")
    before = series()
    for i in range(3, 40):
        svc.client.get(f"/nothing/{i}")
        svc.client.get(f"/api/v1/certificates/probe{i}", headers=_bearer(FILE_TOKEN))
        svc.client.get(f"/crl/x{i}.crl")
        svc.client.get(f"/ui/certificates/intermediate/{i}")
    after = series()
    assert after == before and not any("probe" in s or "/nothing/" in s for s in after)


ROUTE_FAMILIES = ["/api/v1/certificates", "/api/v1/whoami", "/api/v1/openapi.json", "/metrics", "/authz",
                  "/ui/certificates", "/ui/login", "/ui/issue", "/healthz", "/crl/intermediate.crl", "/ocsp"]


@pytest.mark.parametrize("method", ["HEAD", "OPTIONS", "TRACE", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("path", ROUTE_FAMILIES)
def test_other_methods_on_every_route_family_neither_fail_nor_bypass(svc, method, path):
    response = svc.client.request(method, path)
    assert response.status_code < 500, (method, path, response.status_code)
    if path.startswith(("/api/v1/certificates", "/api/v1/whoami", "/ui/certificates", "/ui/issue")):
        assert response.status_code in (401, 404, 405), (method, path, response.status_code)
    if method == "HEAD" or response.status_code == 200:
        assert method in ("HEAD", "OPTIONS") or path in ("/ocsp",), (method, path)
    if method == "HEAD":
        assert response.content == b""


# --- backups --------------------------------------------------------------------------------

DB_PASSWORD = "Db-Pw-" + "z" * 16


@pytest.mark.parametrize("url", [f"postgresql://mtlskit:{DB_PASSWORD}@db.example:5432/ca",
                                 f"postgresql://mtlskit@db.example:5432/ca?password={DB_PASSWORD}&sslmode=require"])
def test_a_backup_holds_no_database_password_and_no_clear_api_token(svc, tmp_path, url):
    from mtlskit.backup.create import _home_files
    from mtlskit.ca.home import CaFiles

    home = tmp_path / "pg-home"
    home.mkdir()
    kept = [line for line in (svc.home / "mtlskit.toml").read_text().splitlines() if not line.startswith("database_url")]
    (home / "mtlskit.toml").write_text(f'database_url = "{url}"\n' + "\n".join(kept) + "\n")
    for entry in ("ca",):
        (home / entry).symlink_to(svc.home / entry)
    settings = load_settings(home, {})
    sources, _ = _home_files(settings, CaFiles(settings.ca_dir))
    config = sources["mtlskit.toml"].decode()
    assert DB_PASSWORD not in config
    assert "postgresql://mtlskit@db.example:5432/ca" in config and "[roles]" in config
    token = svc.api_token("backup-probe-" + str(len(url)))
    assert not any(token.encode() in data for data in sources.values() if isinstance(data, bytes))
    rows = svc.service.inventory.db
    with rows.read() as tx:
        stored = [value for row in tx.all("SELECT * FROM api_tokens") for value in row]
    assert token not in stored and any(isinstance(v, str) and len(v) == 64 for v in stored)


# --- enrollment tokens and API tokens -------------------------------------------------------

def test_an_enrollment_token_is_no_bearer_and_an_api_token_enrolls_nothing(svc):
    from mtlskit.api.tls import TlsNames
    from mtlskit.lifecycle.tokens import TokenGrant, create_token

    enrollment, _ = create_token(svc.service, TokenGrant("enrollee", "client"))
    for path in ("/api/v1/whoami", "/api/v1/certificates", "/metrics", "/ui/certificates"):
        assert svc.client.get(path, headers=_bearer(enrollment)).status_code == 401, path
    tls_app = build_worker(svc.service, svc.authority, api_token=FILE_TOKEN, tls_names=TlsNames.for_host(["localhost"], [])).app
    over_tls = AsgiClient(_as_tls(tls_app, svc.pem("bob")))
    before = svc.service.inventory.count()
    csr = _csr("enrollee")
    for token in (svc.api_token("enroll-body-probe"), FILE_TOKEN, METRICS_TOKEN):
        response = over_tls.post("/api/v1/enroll", json={"token": token, "csr": csr})
        assert response.status_code in (401, 403), response.text
    assert svc.service.inventory.count() == before
    assert over_tls.post("/api/v1/enroll", json={"token": enrollment, "csr": csr}).status_code in (200, 201)


def _csr(name: str, unit: str | None = None) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    request = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name(([x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit)] if unit else [])
                  + [x509.NameAttribute(NameOID.COMMON_NAME, name)])).sign(key, hashes.SHA256())
    return request.public_bytes(serialization.Encoding.PEM).decode()


# --- the /authz secret ----------------------------------------------------------------------

def test_the_authz_secret_opens_nothing_else_and_shows_nowhere(svc, tmp_path):
    from mtlskit.cli.app import main
    from tests.support_authz import POLICY

    (tmp_path / "policy.toml").write_text(POLICY)
    directory = tmp_path / "dep"
    assert main(["--home", str(svc.home), "deploy", "nginx", "--name", "localhost", "--dir", str(directory),
                 "--listen", "127.0.0.1:1", "--upstream", "http://127.0.0.1:2", "--standalone",
                 "--policy", str(tmp_path / "policy.toml"), "--authz-url", "http://127.0.0.1:3"]) == 0
    secret = (directory / "authz-secret.conf").read_text().split('"')[1]
    fresh = AsgiClient(build_worker(svc.service, svc.authority, api_token=FILE_TOKEN,
                                    metrics=MetricsOptions(token=METRICS_TOKEN), ui=svc.setup).app)
    assert fresh.get("/authz", headers={"x-mtlskit-authz-secret": secret}).status_code == 403   # reached: denied
    for path in ("/api/v1/whoami", "/metrics", "/ui/certificates"):
        assert fresh.get(path, headers=_bearer(secret)).status_code == 401, path
        assert fresh.get(path, headers={"x-mtlskit-authz-secret": secret}).status_code == 401, path
    for token in (FILE_TOKEN, svc.api_token("authz-probe"), METRICS_TOKEN):
        answer = fresh.get("/authz", headers={"x-mtlskit-authz-secret": token, "x-mtlskit-verify": "SUCCESS"})
        assert answer.status_code == 403 and b"shared secret" in answer.content
    cookie = svc.ui_cookie()
    seen = [fresh.get("/api/v1/deployments", headers=_bearer(FILE_TOKEN)).text,
            fresh.get("/api/v1/events?limit=1000", headers=_bearer(FILE_TOKEN)).text,
            fresh.get("/metrics", headers=_bearer(METRICS_TOKEN)).text,
            fresh.get("/ui/deployments", headers={"cookie": f"{COOKIE}={cookie}"}).text]
    assert "localhost" in seen[0]
    assert not any(secret in text for text in seen)


# --- children's environments ----------------------------------------------------------------

def test_a_reload_command_gets_no_database_password_from_the_environment(tmp_path, monkeypatch):
    """serve's CRL refresher and `deploy` run reload commands: libpq's PGPASSWORD (which
    psycopg honours for the inventory) must not reach them, nor any MTLSKIT_* secret."""
    from mtlskit.deploy.reload import run_reload

    monkeypatch.setenv("PGPASSWORD", DB_PASSWORD)
    monkeypatch.setenv("MTLSKIT_DATABASE_URL", f"postgresql://u:{DB_PASSWORD}@h/db")
    dump = tmp_path / "env.txt"
    result = run_reload(f"sh -c 'env > {dump}'", tmp_path / "crl.pem", b"")
    assert result.ok, result.message
    text = dump.read_text()
    assert "PATH=" in text and DB_PASSWORD not in text


def test_ui_secrets_are_no_bearer_and_api_tokens_are_no_log_in_link(svc):
    link = svc.setup.login_link()
    cookie = svc.ui_cookie()
    for secret in (link, cookie):
        for path in ("/api/v1/whoami", "/metrics"):
            assert svc.client.get(path, headers=_bearer(secret)).status_code == 401, path
    for token in (svc.api_token("link-probe"), FILE_TOKEN, METRICS_TOKEN):
        answer = svc.client.get(f"/ui/login?token={token}")
        assert answer.status_code == 403 and COOKIE not in answer.cookies
    assert svc.client.get(f"/ui/login?token={link}").status_code == 303   # the link was not used up above


# --- privilege: the issue role must not mint a certificate of a higher role ------------------

def _issued_pem(answer) -> str:
    body = answer.json()
    for key in ("certificate", "cert", "certificate_pem", "cert_pem"):
        if isinstance(body.get(key), str):
            return body[key]
    raise AssertionError(sorted(body))


@pytest.mark.parametrize("request_body", [
    {"profile": "client", "name": "alice"},
    {"profile": "client", "name": "mallory-ops", "subject": {"org_unit": "Ops"}},
    {"profile": "client", "name": "mallory-admins", "subject": {"org_unit": "Admins"}},
    {"profile": "peer", "name": "carol"},
], ids=["cn-of-an-admin", "ou-of-revoke", "ou-of-admin", "peer-cn-of-an-admin"])
def test_an_issue_token_cannot_mint_a_certificate_that_maps_to_a_role(svc, request_body):
    from cryptography import x509

    from mtlskit.api.auth import principal_for_certificate

    issuer = svc.api_token("issuer-" + request_body["name"], role="issue")
    before = svc.service.inventory.count()
    answer = svc.client.post("/api/v1/certificates", headers=_bearer(issuer), json=request_body)
    if answer.status_code in (200, 201):
        certificate = x509.load_pem_x509_certificate(_issued_pem(answer).encode())
        assert principal_for_certificate(certificate, svc.settings) is None, answer.json()
    else:
        assert answer.status_code == 403 and "[roles]" in answer.json()["detail"], answer.text
        assert svc.service.inventory.count() == before


def test_an_issue_token_may_still_issue_names_without_a_higher_role(svc):
    issuer = svc.api_token("issuer-plain", role="issue")
    assert svc.client.post("/api/v1/certificates", headers=_bearer(issuer),
                           json={"profile": "client", "name": "dave"}).status_code == 201
    admin = svc.api_token("issuer-admin", role="admin")
    assert svc.client.post("/api/v1/certificates", headers=_bearer(admin),
                           json={"profile": "client", "name": "erin", "subject": {"org_unit": "Admins"}}).status_code == 201


def test_an_issue_token_cannot_sign_a_csr_or_renew_into_a_higher_role(svc):
    issuer = svc.api_token("signer-probe", role="issue")
    before = svc.service.inventory.count()
    for body in ({"csr": _csr("alice"), "profile": "client"},
                 {"csr": _csr("x"), "profile": "client", "name": "carol"},
                 {"csr": _csr("y", "Admins"), "profile": "client"}):
        answer = svc.client.post("/api/v1/sign", headers=_bearer(issuer), json=body)
        assert answer.status_code == 403, answer.text
    answer = svc.client.post("/api/v1/certificates/alice/renew", headers=_bearer(issuer), json={"csr": _csr("z")})
    assert answer.status_code == 403, answer.text
    assert svc.service.inventory.count() == before


def test_an_issue_token_cannot_renew_a_higher_role_certificate_with_a_new_key(svc):
    """new_key hands the caller a fresh key for alice's (admin) subject: the same door as a CSR."""
    issuer = svc.api_token("new-key-probe", role="issue")
    before = svc.service.inventory.count()
    answer = svc.client.post("/api/v1/certificates/alice/renew", headers=_bearer(issuer), json={"new_key": True})
    assert answer.status_code == 403, answer.text
    assert "private_key" not in answer.text
    assert svc.service.inventory.count() == before


def test_an_issue_role_ui_session_cannot_issue_an_admin_certificate(svc, tmp_path):
    from mtlskit.ui.session import Sessions

    sessions = Sessions(svc.setup.key, svc.setup.state_dir, svc.setup.session_seconds)
    cookie, session = sessions.open("issuer", "issue", "link", svc.service.clock.now().timestamp())
    before = svc.service.inventory.count()
    page = svc.client.get("/ui/issue", headers={"cookie": f"{COOKIE}={cookie}"})
    import re

    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    answer = svc.client.post("/ui/issue", headers={"cookie": f"{COOKIE}={cookie}"}, data={
        "name": "alice", "key_type": "ec-p256", "format": "p12-modern", "password": P12_PASSWORD,
        "password2": P12_PASSWORD, "csrf": csrf})
    assert answer.status_code in (403, 422) and "[roles]" in answer.text
    assert svc.service.inventory.count() == before


# --- cross-site requests a browser would send with the client certificate --------------------

@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", None])
def test_a_cross_site_simple_request_with_an_admin_certificate_changes_nothing(svc, content_type):
    """A page elsewhere can make the browser POST, with its client certificate, only the
    CORS-safelisted types (no preflight): the API takes JSON only, the UI a CSRF token."""
    import json

    alice = svc.tls_clients["alice"]
    bob = svc.service.inventory.by_name("bob")[-1]
    headers = {"origin": "https://evil.example"} | ({"content-type": content_type} if content_type else {})
    body = json.dumps({"targets": ["bob"], "reason": "key-compromise"})
    assert alice.post("/api/v1/revocations", content=body, headers=headers).status_code == 415
    assert alice.post("/api/v1/certificates", content=json.dumps({"profile": "client", "name": "xs"}),
                      headers=headers).status_code == 415
    ui = alice.post(f"/ui/certificates/intermediate/{bob.serial_hex}/revoke",
                    content="reason=key-compromise&confirm=yes", headers=headers)
    assert ui.status_code in (403, 415)
    preflight = alice.request("OPTIONS", "/api/v1/revocations", headers={
        "origin": "https://evil.example", "access-control-request-method": "POST",
        "access-control-request-headers": "content-type"})
    assert "access-control-allow-origin" not in preflight.headers
    assert svc.service.inventory.by_name("bob")[-1].status == "valid"


@pytest.mark.parametrize("row_id", [10 ** 30, -(10 ** 30), 2 ** 63, 10 ** 4000])
def test_a_forged_cursor_with_a_huge_row_id_is_a_422_not_a_500(svc, row_id):
    import base64
    import json

    cursor = base64.urlsafe_b64encode(json.dumps(["2026-01-01T00:00:00+00:00", row_id]).encode()).decode().rstrip("=")
    response = svc.client.get(f"/api/v1/certificates?cursor={cursor}", headers=_bearer(FILE_TOKEN))
    assert response.status_code in (200, 422), response.text[:200]
    assert response.headers["content-type"].startswith("application/")


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00",
                                  "2026-01-01T00:00:00+23:59"])
def test_a_forged_cursor_at_the_ends_of_time_is_a_422_or_a_page(svc, when):
    import base64
    import json

    cursor = base64.urlsafe_b64encode(json.dumps([when, 1]).encode()).decode().rstrip("=")
    response = svc.client.get(f"/api/v1/certificates?cursor={cursor}", headers=_bearer(FILE_TOKEN))
    assert response.status_code in (200, 422), response.text[:200]


@pytest.mark.parametrize("query", ["expiring=" + "9" * 30 + "d", "expiring=99999999h", "expiring=999999999d",
                                   "expiring=" + "9" * 5000 + "d", "name=" + "a" * 5000, "status=" + "\u00e9" * 10])
def test_huge_filters_on_the_api_are_a_422_or_a_page(svc, query):
    response = svc.client.get(f"/api/v1/certificates?{query}", headers=_bearer(FILE_TOKEN))
    assert response.status_code in (200, 400, 422), (query[:30], response.status_code)


@pytest.mark.parametrize("query", ["expiring=" + "9" * 30 + "d", "expiring=999999999d", "status=x" * 100,
                                   "profile=" + "p" * 5000, "q=" + "9" * 5000, "serial=" + "f" * 5000,
                                   "sort=" + "x" * 100, "after=1&before=2"])
def test_huge_filters_on_the_ui_are_answered(svc, query):
    cookie = svc.ui_cookie()
    response = svc.client.get(f"/ui/certificates?{query}", headers={"cookie": f"{COOKIE}={cookie}"})
    assert response.status_code in (200, 400, 422), (query[:30], response.status_code)


def test_an_issue_token_cannot_revoke_through_renew_revoke_old(svc, tmp_path):
    from tests.support_crl import issue as issue_files

    issue_files(svc.home, "client", "frank", tmp_path / "out")
    issuer = svc.api_token("renewer-probe", role="issue")
    before = svc.service.inventory.by_name("frank")[-1]
    answer = svc.client.post("/api/v1/certificates/frank/renew", headers=_bearer(issuer), json={"revoke_old": True})
    assert answer.status_code == 403, answer.text
    assert svc.service.inventory.by_fingerprint(before.fingerprint_sha256).status == "valid"
    reviser = svc.api_token("renewer-revoke", role="revoke")
    answer = svc.client.post("/api/v1/certificates/frank/renew", headers=_bearer(reviser), json={"revoke_old": True})
    assert answer.status_code == 201, answer.text
    assert svc.service.inventory.by_fingerprint(before.fingerprint_sha256).status == "revoked"


def test_an_enrollment_csr_cannot_bring_an_ou_or_cn_that_maps_to_a_role(svc):
    from cryptography import x509

    from mtlskit.api.auth import principal_for_certificate
    from mtlskit.api.tls import TlsNames
    from mtlskit.lifecycle.tokens import TokenGrant, create_token

    tls_app = build_worker(svc.service, svc.authority, api_token=FILE_TOKEN,
                           tls_names=TlsNames.for_host(["localhost"], [])).app
    over_tls = AsgiClient(_as_tls(tls_app, svc.pem("bob")))
    for name, csr in (("device-1", _csr("device-1", "Admins")), ("device-2", _csr("alice"))):
        enrollment, _ = create_token(svc.service, TokenGrant(name, "client"))
        answer = over_tls.post("/api/v1/enroll", json={"token": enrollment, "csr": csr})
        if answer.status_code in (200, 201):
            body = answer.json()
            pem = next(v for k, v in body.items() if isinstance(v, str) and "BEGIN CERTIFICATE" in v)
            certificate = x509.load_pem_x509_certificate(pem.encode())
            assert principal_for_certificate(certificate, svc.settings) is None, certificate.subject
        else:
            assert answer.status_code in (400, 403, 422), answer.text


@pytest.mark.parametrize("which", ["file-token", "api-token"])
def test_serve_refuses_a_metrics_token_that_is_also_an_api_token(tmp_path, which):
    import subprocess

    from mtlskit.api.token import ensure_token
    from tests.support_ocsp import free_port, mtlskit_cli

    home = make_home(tmp_path)
    if which == "file-token":
        token_file = ensure_token(home)
    else:
        service = Service.open(load_settings(home, {}))
        token, _ = create_api_token(service, "prometheus", "read")
        token_file = tmp_path / "metrics-token"
        token_file.write_text(token + "\n")
        token_file.chmod(0o600)
    config = home / "mtlskit.toml"
    text = config.read_text() if config.exists() else ""
    config.write_text(f'metrics_token_file = "{token_file}"\n' + text)
    try:
        done = mtlskit_cli(home, "serve", "--api", "--port", str(free_port()))
    except subprocess.TimeoutExpired:
        pytest.fail("serve started with an API token as its metrics token")
    err = done.stderr.decode()
    assert done.returncode == 2 and err.startswith("error:") and "metrics_token_file" in err
    assert token_file.read_text().strip() not in err + done.stdout.decode()
