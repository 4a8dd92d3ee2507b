"""Door 1: a client forges the identity headers an upstream trusts.

Every server must drop every client-sent header of the identity family (names starting
with X-Client-, X-SSL-, SSL-Client, X-TLS-, or X-Forwarded-Client-Cert, any case, `_`
read as `-`: CGI/WSGI gateways fold `X_Client-Verify` onto HTTP_X_CLIENT_VERIFY) and send
only the identity the TLS layer established. Real servers, standalone configurations.
"""

from __future__ import annotations

import shutil

import pytest

from mtlskit.deploy import headers as H
from tests.support_deploy import EchoUpstream, ServerProcess, get, start_command
from tests.support_identity import FORGED, KEPT, SERVERS, identity_pki, in_family, start_standalone, work_dir

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def env():
    pki = identity_pki()
    base = work_dir()
    clients = base / "clients"
    clients.mkdir()
    ca = clients / "root.pem"
    ca.write_bytes(pki.root.pem())
    upstream = EchoUpstream("default")
    yield pki, base, ca, {n: pki.write_client(clients, n) for n in ("alice",)}, upstream
    upstream.close()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module", params=SERVERS)
def optional(request, env):
    pki, base, _, _, upstream = env
    srv = start_standalone(request.param, "optional", pki, base / request.param, upstream.url)
    yield srv
    srv.process.close()


def _family_received(outcome) -> dict[str, list[str]]:
    received: dict[str, list[str]] = {}
    for name, value in outcome.json()["headers"]:
        if in_family(name):
            received.setdefault(name.lower(), []).append(value)   # HAProxy sends lower case
    return received


def test_forged_family_never_reaches_upstream_without_certificate(optional, env):
    _, _, ca, _, _ = env
    outcome = get(optional.port, "/", ca, None, headers={**FORGED, **KEPT})
    assert outcome.status == 200, outcome
    assert _family_received(outcome) == {H.VERIFY.lower(): ["NONE"]}


def test_forged_family_never_reaches_upstream_with_certificate(optional, env):
    pki, _, ca, clients, _ = env
    outcome = get(optional.port, "/", ca, clients["alice"], headers={**FORGED, **KEPT})
    assert outcome.status == 200, outcome
    received = _family_received(outcome)
    assert set(received) == {name.lower() for name in H.IDENTITY_HEADERS}
    assert received[H.VERIFY.lower()] == ["SUCCESS"]
    assert received[H.SUBJECT_DN.lower()] == ["CN=alice,OU=engineering,O=mtlskit tests"]
    assert all(len(values) == 1 and "forged" not in values[0] for values in received.values())


def test_headers_outside_the_family_pass(optional, env):
    _, _, ca, _, _ = env
    outcome = get(optional.port, "/", ca, None, headers={**FORGED, **KEPT})
    for name, value in KEPT.items():
        assert outcome.header(name) == [value]


def test_nginx_removes_underscore_spellings_even_when_underscores_are_allowed(env):
    """underscores_in_headers is taken from the default server of the address, which in
    an include-only deployment may be the user's: the site must not rely on it."""
    pki, base, ca, clients, upstream = env
    srv = start_standalone("nginx", "optional", pki, base / "nginx-underscores", upstream.url)
    srv.process.close()
    main = srv.options.directory / "nginx.conf"
    main.write_text(main.read_text().replace("http {", "http {\n    underscores_in_headers on;", 1))
    process = ServerProcess(start_command("nginx", srv.options.directory), srv.port, base / "nginx-underscores.log")
    try:
        outcome = get(srv.port, "/", ca, clients["alice"], headers={**FORGED, **KEPT, "X_Other_Thing": "kept"})
        assert outcome.header("X_Other_Thing") == ["kept"]          # underscores do pass here
        received = _family_received(outcome)
        assert set(received) == {name.lower() for name in H.IDENTITY_HEADERS}
        assert all("forged" not in values[0] and len(values) == 1 for values in received.values())
    finally:
        process.close()
