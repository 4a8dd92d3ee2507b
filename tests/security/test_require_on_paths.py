"""Door 3: `--require-on PREFIX` cannot be bypassed by spelling the path another way.

One server per program (optional mode, --require-on /admin and /ops/tools) in front of an
echo upstream. Requests are written by hand on a TLS socket: curl and http.client
normalise paths, an attacker does not. For every request the test asks what the
upstream actually received, and whether an upstream that reads paths generously
(decodes %XX, drops ;parameters, folds case, merges slashes, resolves dot segments,
takes \\ for /) could read it as a protected path.
"""

from __future__ import annotations

import json
import posixpath
import shutil
import socket
import ssl
import tempfile
import types
import urllib.parse
from pathlib import Path

import pytest

from mtlskit.deploy.bundle import deployment_files
from mtlskit.deploy.install import install
from mtlskit.deploy.options import DeployOptions, parse_listen, parse_upstream, validate
from tests.support_deploy import EchoUpstream, Outcome, ServerProcess, build_pki, free_port, start_command

pytestmark = pytest.mark.e2e

PREFIXES = ("/admin", "/ops/tools")

# Other spellings of a protected path: each must be refused without a certificate.
BYPASSES = [
    "/ADMIN", "/Admin/users", "/admin;x", "/admin;jsessionid=1/users", "/ADMIN;x", "/%61dmin",
    "/%41DMIN/x", "//admin", "///admin/x", "/admin%3bx", "/admin/", "/admin?x=1",
    "/ops/tools", "/OPS/Tools", "/ops;a/tools;b", "/ops//tools", "//ops///tools/x",
    "https://localhost/ADMIN", "/;x/admin", "/;/ADMIN/x", "/ops/;a/tools", "/;x//ops;y/;/tools",
    "/admin%23x", "/admin%3Fx", "/ops/tools%3f/",
]
# A fragment has no place in a request: Apache and HAProxy answer 400, Nginx cuts it off.
FRAGMENTS = ["/admin#x", "/ADMIN#/../public"]
# Paths whose meaning depends on who decodes or resolves them: refused, whoever asks.
AMBIGUOUS = [
    "/admin%2f", "/admin%2fx", "/admin%2Fusers", "/x%2f..%2fadmin", "/./admin", "/x/../admin",
    "/x/./../admin", "/x/%2e%2e/admin", "/x/%2E%2e/admin", "/%2e/admin", "/admin/..;/",
    "/x/..;/admin", "/x;y/../admin", "/.;/admin", "/x/..", "/admin\\x", "/x\\..\\admin",
    "/x%5c..%5cadmin", "/ops/x/../tools", "https://localhost/x/../admin", "/admin%00", "/admin%00.css",
    "/x/%252e%252e/admin", "/admin%252fx", "/x%255c..%255cadmin",
]
# Public paths: served without a certificate, unchanged.
PUBLIC = ["/", "/administrator", "/adminx", "/public/admin", "/ops", "/ops/toolsx", "/x;admin",
          "/hello%20world", "/a?next=/admin", "/a?next=/../admin&p=%2f"]


def _path_of(target: str) -> str:
    if "://" in target:
        target = "/" + target.split("://", 1)[1].partition("/")[2]
    return target.partition("?")[0].partition("#")[0]


def _readings(raw: str) -> set[str]:
    """Every path a generous upstream could make of the path in ``raw``."""
    readings = set()
    path = _path_of(raw)
    unquoted = urllib.parse.unquote(path)
    for decoded in (path, unquoted, unquoted.partition("?")[0].partition("#")[0]):   # decode, then split
        for params_first in (True, False):
            text = decoded.replace("\\", "/").split("\x00")[0]   # C strings end at NUL
            segments = text.split("/")
            if params_first:
                segments = [s.split(";")[0] for s in segments]
            resolved = posixpath.normpath("/" + "/".join(s for s in segments if s))
            if not params_first:
                resolved = "/".join(s.split(";")[0] for s in resolved.split("/"))
            readings.add(resolved.lower())
    return readings


def could_be_protected(raw: str) -> bool:
    return any(r == p or r.startswith(p + "/") for r in _readings(raw) for p in PREFIXES)


def test_the_generous_reading_model():
    assert all(could_be_protected(p) for p in BYPASSES + AMBIGUOUS if p != "/x/.." and "%25" not in p)
    assert not any(could_be_protected(p) for p in PUBLIC)


def request(port: int, target: str, ca: Path, cert: tuple[Path, Path] | None = None) -> Outcome:
    """One raw GET over TLS, the request target sent byte for byte."""
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.check_hostname = False
    if cert:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock, \
            ctx.wrap_socket(sock) as tls:
        tls.sendall(f"GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if b"chunked" in head.lower():
        body = _unchunk(body)
    return Outcome(status=int(head.split(b" ")[1]), body=body)


def _unchunk(body: bytes) -> bytes:
    out = b""
    while body:
        size, _, rest = body.partition(b"\r\n")
        n = int(size.split(b";")[0], 16)
        if n == 0:
            break
        out, body = out + rest[:n], rest[n + 2:]
    return out


def _received(outcome: Outcome) -> str | None:
    """The path the echo upstream received, or None when the upstream did not answer."""
    if outcome.status != 200:
        return None
    try:
        return json.loads(outcome.body)["path"]
    except (ValueError, KeyError):
        return None


@pytest.fixture(scope="module")
def work():
    pki = build_pki()
    base = Path(tempfile.mkdtemp(prefix="mtlskit-paths-"))
    base.chmod(0o755)
    ns = types.SimpleNamespace(pki=pki, base=base, ca=base / "root.pem", upstream=EchoUpstream("default"),
                               alice=pki.write_client(base, "alice"))
    ns.ca.write_bytes(pki.root.pem())
    yield ns
    ns.upstream.close()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module", params=["nginx", "apache", "haproxy"])
def server(request, work):
    port = free_port()
    options = validate(DeployOptions(
        server=request.param, name="localhost", directory=work.base / request.param,
        listen=parse_listen(f"127.0.0.1:{port}"), upstream=parse_upstream(work.upstream.url),
        mode="optional", require_on=PREFIXES, standalone=True))
    install(options.directory, deployment_files(
        options, work.pki.server.pem() + work.pki.intermediate.pem(), work.pki.server.key_pem(),
        work.pki.ca_certificates, work.pki.crls()))
    process = ServerProcess(start_command(request.param, options.directory), port,
                            options.directory / "stdout.log")
    yield types.SimpleNamespace(name=request.param, port=port)
    process.close()


@pytest.mark.parametrize("target", BYPASSES)
def test_other_spellings_of_a_protected_path_need_a_certificate(server, work, target):
    refused = request(server.port, target, work.ca)
    assert refused.status == 403 and b"client certificate required" in refused.body, (target, refused)
    admitted = request(server.port, target, work.ca, work.alice)
    received = _received(admitted)
    assert received is not None, (target, admitted)
    assert could_be_protected(received), (target, received)   # the upstream got the protected path


@pytest.mark.parametrize("target", FRAGMENTS)
def test_fragments_of_protected_paths_never_reach_the_upstream_without_a_certificate(server, work, target):
    outcome = request(server.port, target, work.ca)
    assert _received(outcome) is None and outcome.status in (400, 403), (target, outcome)


@pytest.mark.parametrize("target", AMBIGUOUS)
@pytest.mark.parametrize("with_cert", [False, True])
def test_ambiguous_paths_are_refused_and_never_reach_the_upstream(server, work, target, with_cert):
    outcome = request(server.port, target, work.ca, work.alice if with_cert else None)
    assert _received(outcome) is None, (target, outcome)
    # Apache answers 404 to an encoded slash (AllowEncodedSlashes Off) or NUL before any rule runs.
    apache_404 = server.name == "apache" and ("%2f" in target.lower() or "%00" in target)
    allowed = {400, 403} | ({404} if apache_404 else set())
    assert outcome.status in allowed, (target, outcome)


@pytest.mark.parametrize("target", PUBLIC)
def test_public_paths_reach_the_upstream_without_a_certificate(server, work, target):
    received = _received(request(server.port, target, work.ca))
    assert received is not None, target
    assert not could_be_protected(received), (target, received)


# What the upstream receives (Python's http.server, the echo upstream, folds a leading "//").
RECEIVED = {
    "/%61dmin/x": {"apache": "/admin/x"},
    "/admin//x": {"apache": "/admin/x"},
    "/ADMIN;x": {},
    "/public%3Bx": {"apache": "/public;x"},
    "/Admin%20x/y": {},
}


@pytest.mark.parametrize("target", RECEIVED)
def test_what_the_upstream_receives(server, work, target):
    """Nginx and HAProxy forward the path as sent; Apache forwards its normalised form."""
    received = _received(request(server.port, target, work.ca, work.alice))
    assert received == RECEIVED[target].get(server.name, target)
