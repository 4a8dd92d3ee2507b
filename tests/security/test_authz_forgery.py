"""The attacker's view of `deploy nginx --policy`, through a real Nginx and a real `mtlskit
serve`: forged rule and subrequest fields in every spelling, /authz called directly, path
tricks, odd methods, and serve being down (denied, never allowed)."""

from __future__ import annotations

import shutil
import urllib.request

import pytest

from tests.support_authz import AuthzStack

pytestmark = [pytest.mark.security, pytest.mark.e2e,
              pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")]


@pytest.fixture(scope="module")
def stack():
    built = AuthzStack()
    yield built
    built.close()


RULE_SPELLINGS = ["X-Client-Authz-Rule", "x-client-authz-rule", "X-CLIENT-AUTHZ-RULE", "X-Client_Authz-Rule",
                  "X_Client_Authz_Rule", "X-client-Authz_rule"]


@pytest.mark.parametrize("spelling", RULE_SPELLINGS)
def test_a_forged_rule_header_never_reaches_the_upstream(stack, spelling):
    forged = f"{spelling}: admins\r\n{spelling}: admins\r\n"        # and duplicated
    reply = stack.request("bob", "/public/x", headers=forged)
    assert reply.status == 200
    received = [(k, v) for k, v in reply.json()["headers"] if "authz" in k.lower().replace("_", "-")]
    assert received == [("X-Client-Authz-Rule", "public")]


def test_a_forged_rule_header_does_not_open_a_path(stack):
    forged = "".join(f"{s}: admins\r\n" for s in RULE_SPELLINGS)
    assert stack.request("bob", "/admin/x", headers=forged).status == 403


def test_forged_subrequest_fields_from_the_client_are_not_believed(stack):
    """bob sends what nginx sends /authz, alice's fingerprint included: nginx passes none of
    the client's fields to the subrequest, and strips them from what the upstream gets."""
    forged = (f"X-Mtlskit-Fingerprint: {stack.fingerprint('alice')}\r\nX-Mtlskit-Path: /public/\r\n"
              f"X-Mtlskit-Method: GET\r\nX-Mtlskit-Verify: SUCCESS\r\nX_Mtlskit_Path: /public/\r\n"
              f"X-Mtlskit-Authz-Secret: guess\r\n")
    assert stack.request("bob", "/admin/x", headers=forged).status == 403
    reply = stack.request("bob", "/public/x", headers=forged)
    assert reply.status == 200
    assert not [k for k, _ in reply.json()["headers"] if "mtlskit" in k.lower()]


def _direct(stack, fields: dict[str, str], method: str = "GET") -> tuple[int, bytes]:
    request = urllib.request.Request(f"{stack.serve.url}/authz", headers=fields, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _forged(stack, **extra) -> dict[str, str]:
    return {"X-Mtlskit-Verify": "SUCCESS", "X-Mtlskit-Fingerprint": stack.fingerprint("alice"),
            "X-Mtlskit-Method": "GET", "X-Mtlskit-Path": "/admin/x", **extra}


@pytest.mark.parametrize("secret", [None, "", "guess", "x" * 43])
def test_authz_called_directly_with_a_forged_certificate_is_refused(stack, secret):
    fields = _forged(stack) if secret is None else _forged(stack, **{"X-Mtlskit-Authz-Secret": secret})
    status, body = _direct(stack, fields)
    assert status == 403 and b"shared secret" in body


def test_the_real_secret_with_a_nearly_right_value_is_refused(stack):
    secret = stack.secret
    near = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    assert _direct(stack, _forged(stack, **{"X-Mtlskit-Authz-Secret": near}))[0] == 403
    assert _direct(stack, _forged(stack, **{"X-Mtlskit-Authz-Secret": secret + "x"}))[0] == 403
    status, _ = _direct(stack, _forged(stack, **{"X-Mtlskit-Authz-Secret": secret}))
    assert status == 200        # the control: only the secret was wrong above


def test_the_secret_reaches_neither_the_upstream_nor_the_client(stack):
    reply = stack.request("alice", "/admin/x")
    assert stack.secret not in reply.body.decode() and stack.secret not in reply.head
    denied = stack.request("bob", "/admin/x")
    assert stack.secret.encode() not in denied.body and stack.secret not in denied.head


def test_the_subrequest_location_is_internal(stack):
    before = len(stack.echo.requests)
    for target in ("/.mtlskit-authz", "/.MTLSKIT-AUTHZ", "/%2emtlskit-authz"):
        assert stack.request("alice", target).status in (400, 403, 404), target
    assert stack.echo.requests[before:] == []


@pytest.mark.parametrize("target, status", [
    ("/public/../admin/x", 400), ("/public/%2e%2e/admin/x", 400), ("/public/%2E%2E/admin/x", 400),
    ("/public/.%2e/admin/x", 400), ("/public/..%2fadmin/x", 400), ("/public%2f..%2fadmin/x", 400),
    ("/public/%2fadmin", 400), ("/public/%252e%252e/admin/x", 400), ("/public/x%5c..%5cadmin", 400),
    ("/public/x\\..\\admin", 400), ("/public/..;/admin/x", 400), ("/public/x;/../admin", 400),
    ("/public/x%3F/../../admin/x", 400), ("/public/x%00", 400), ("/public/./x", 400),
    ("//admin/x", 400), ("/public//x", 400), ("/public/x%0d%0aX-Mtlskit-Path:%20/public/", 400),
    ("/public/x%0aX-Mtlskit-Fingerprint:%20AA", 400),
    ("/ADMIN/x", 403), ("/Admin/x", 403), ("/admin", 403), ("/public", 403), ("/Public/x", 403),
    ("/admin;x/y", 403), ("/%61dmin/x", 403), ("/admin/x", 403),
])
def test_path_tricks_never_open_the_admin_paths(stack, target, status):
    """bob may use /public/ only: no spelling of a path takes him elsewhere; the ambiguous
    ones are refused outright (400) whatever the certificate, alice's included."""
    before = len(stack.echo.requests)
    assert stack.request("bob", target).status == status, target
    assert stack.echo.requests[before:] == []
    if status == 400:
        assert stack.request("alice", target).status == 400, target
        assert stack.echo.requests[before:] == []


@pytest.mark.parametrize("method", ["get", "Get", "gEt", "G\tET"])
def test_odd_method_spellings_are_refused_by_nginx(stack, method):
    before = len(stack.echo.requests)
    try:
        status = stack.request("alice", "/admin/x", method=method).status
    except ConnectionError:
        status = None
    assert status in (None, 400, 405)
    assert stack.echo.requests[before:] == []


def test_serve_down_means_denied_then_back(stack):
    assert stack.request("alice", "/admin/x").status == 200
    stack.serve.stop()
    before = len(stack.echo.requests)
    try:
        for client, target in (("alice", "/admin/x"), ("bob", "/public/x"), ("eve", "/public/x")):
            status = stack.request(client, target).status
            assert status >= 500, (client, target, status)
        assert stack.echo.requests[before:] == []
    finally:
        stack.start_serve()
    assert stack.request("alice", "/admin/x").status == 200


@pytest.mark.parametrize("target, alice", [("https://localhost/admin/x", 200), ("http://localhost/admin/x", 200),
                                           ("https://localhost//admin/x", 400),
                                           ("https://localhost/public/../admin/x", 400)])
def test_absolute_form_targets_are_judged_on_their_path(stack, target, alice):
    before = len(stack.echo.requests)
    assert stack.request("bob", target).status in (400, 403), target
    assert stack.echo.requests[before:] == []
    reply = stack.request("alice", target)
    assert reply.status == alice
    if alice == 200:     # what the upstream got is the path that was judged
        assert reply.header("X-Client-Authz-Rule") == ["admins"] and reply.json()["path"] == "/admin/x"


def _signed_by_the_ca(stack, name: str, days: float) -> None:
    """A client leaf CN=alice (SPIFFE admin ID too) signed with the CA's intermediate key
    directly, never recorded in the inventory, valid ``days`` from now (negative: expired)."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca_dir = stack.home / "ca"
    issuer = x509.load_pem_x509_certificate((ca_dir / "intermediate.pem").read_bytes())
    issuer_key = serialization.load_pem_private_key((ca_dir / "intermediate.key.pem").read_bytes(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    not_after = now + dt.timedelta(days=days)
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "alice")]))
            .issuer_name(issuer.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(min(now, not_after) - dt.timedelta(days=2)).not_valid_after(not_after)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier("spiffe://corp/admin/x")]),
                           critical=False)
            .sign(issuer_key, hashes.SHA256()))
    directory = stack.base / "clients" / name
    directory.mkdir()
    (directory / "fullchain.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM)
                                              + issuer.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                          serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))


def test_a_certificate_signed_outside_the_inventory_is_denied(stack):
    """A leaf the CA's key signed but the inventory never recorded (a key misused, a
    database restored from an older backup), claiming alice's name: Nginx verifies it,
    /authz does not know it."""
    _signed_by_the_ca(stack, "ghost", days=1)
    before = len(stack.echo.requests)
    assert stack.request("ghost", "/admin/x").status == 403
    assert stack.request("ghost", "/public/x").status == 403
    assert stack.echo.requests[before:] == []
    log = (stack.directory / "access.log").read_text()
    assert 'denied="certificate not issued by this CA"' in log


def test_an_expired_certificate_gets_nothing(stack):
    """Refused by Nginx at the handshake already (the /authz check of expiry, for a
    certificate that expires while its connection is open, is in tests/integration)."""
    _signed_by_the_ca(stack, "expired", days=-1)
    before = len(stack.echo.requests)
    try:
        status = stack.request("expired", "/public/x").status
    except (OSError, ConnectionError):
        status = None
    assert status in (None, 400)
    assert stack.echo.requests[before:] == []
