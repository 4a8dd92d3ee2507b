"""The identity headers, byte for byte: the same client certificate presented to nginx,
apache and haproxy (TLS 1.2 and 1.3) gives the upstream the same values, and those values
are the ones computed in Python from the certificate (mtlskit.deploy.headers).

Also: the logs that explain, an accepted client's DN and serial in the access log and a
refused client's reason in the error log, in the deployment directory (``--standalone``).
"""

from __future__ import annotations

import http.client
import shutil
import ssl
import tempfile
import types
import urllib.parse
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from mtlskit.deploy import headers as H
from mtlskit.deploy.bundle import deployment_files
from mtlskit.deploy.check import run_check
from mtlskit.deploy.install import install
from mtlskit.deploy.options import DeployOptions, parse_listen, parse_upstream, validate
from mtlskit.deploy.render import log_files, site_for_check
from tests.support_deploy import EchoUpstream, Outcome, ServerProcess, client_context, free_port, wait_for
from tests.support_identity import SERVERS, identity_pki, in_family, start_standalone, work_dir

pytestmark = pytest.mark.e2e

CLIENTS = ("alice", "bob", "zero-nibble", "whole-lines", "trailing-zero", "escaped", "utf8", "multi", "no-cn", "two-cn",
           "every-field")
TLS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
# Where each server's per-request and refusal logs land for --standalone (HAProxy cannot
# write files: it logs to stdout in the foreground, which the test sends to haproxy.log).
LOGS = {"nginx": ("access.log", "error.log"), "apache": ("access.log", "error.log"),
        "haproxy": ("haproxy.log", "haproxy.log")}
# Each server's words for the refused clients: expired, issued by an unknown CA, revoked
# (HAProxy logs OpenSSL's verify error code of the leaf: 10 expired, 20 unknown issuer,
# 23 revoked).
REFUSED = ("expired", "other-ca", "revoked")
REASONS = {"nginx": ("(10:certificate has expired)", "(21:unable to verify the first certificate)",
                     "(23:certificate revoked)"),
           "apache": ("Error (10): certificate has expired", "Error (20): unable to get local issuer certificate",
                      "Error (23): certificate revoked"),
           "haproxy": ("SSL client certificate not trusted ssl_c_err=10",
                       "SSL client certificate not trusted ssl_c_err=20", "ssl_c_err=23")}


@pytest.fixture(scope="module")
def env():
    pki = identity_pki()
    base = work_dir()
    clients = base / "clients"
    clients.mkdir()
    ca = clients / "root.pem"
    ca.write_bytes(pki.root.pem())
    upstream = EchoUpstream("default")
    servers = {}
    try:
        for server in SERVERS:
            servers[server] = start_standalone(server, "required", pki, base / server, upstream.url,
                                               stdout_name="haproxy.log" if server == "haproxy" else "stdout.log")
        yield types.SimpleNamespace(pki=pki, ca=ca, servers=servers, upstream=upstream,
                                    clients={n: pki.write_client(clients, n) for n in pki.clients})
    finally:
        for srv in servers.values():
            srv.process.close()
        upstream.close()
        shutil.rmtree(base, ignore_errors=True)


def _get(port: int, env, client: str, tls: str) -> Outcome:
    ctx = client_context(env.ca, env.clients[client])
    ctx.minimum_version = ctx.maximum_version = TLS[tls]
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        return Outcome(status=response.status, body=response.read())
    except (ssl.SSLError, ConnectionError, http.client.RemoteDisconnected) as exc:
        return Outcome(tls_error=f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()


def _identity(outcome: Outcome) -> dict[str, list[str]]:
    assert outcome.status == 200, outcome
    received: dict[str, list[str]] = {}
    for name, value in outcome.json()["headers"]:
        if in_family(name):
            received.setdefault(name.lower(), []).append(value)   # HAProxy sends lower case
    return received


@pytest.mark.parametrize("tls", TLS)
@pytest.mark.parametrize("client", CLIENTS)
def test_same_certificate_same_bytes_on_every_server(env, client, tls):
    leaf = env.pki.clients[client].cert
    expected = {name.lower(): [value] for name, value in H.expected_values(leaf).items()}
    received = {server: _identity(_get(srv.port, env, client, tls)) for server, srv in env.servers.items()}
    for server in SERVERS:
        assert received[server] == expected, server
    [cert] = expected[H.CERT.lower()]
    # a form decoder (+ read as space) does not corrupt it
    assert urllib.parse.unquote_plus(cert).encode() == leaf.public_bytes(Encoding.PEM)


def test_reference_values_follow_the_documented_rules(env):
    bob = H.expected_values(env.pki.clients["bob"].cert)
    assert bob[H.SERIAL][0] in "89ABCDEF" and bob[H.SERIAL] == bob[H.SERIAL].upper()
    assert H.expected_values(env.pki.clients["zero-nibble"].cert)[H.SERIAL].startswith("0A")
    utf8 = H.expected_values(env.pki.clients["utf8"].cert)
    assert utf8[H.SUBJECT_DN] == r"CN=zo\C3\AB,OU=\C3\89quipe \CE\A9,O=Soci\C3\A9t\C3\A9 G\C3\A9n\C3\A9rale,C=FR"
    assert utf8[H.CN] == r"zo\C3\AB"
    escaped = H.expected_values(env.pki.clients["escaped"].cert)
    assert escaped[H.CN] == r'\#Doe\, John \+\"q\" \<x\>\; =y\\\ '
    assert H.expected_values(env.pki.clients["multi"].cert)[H.SUBJECT_DN] == "UID=m-1+CN=multi,O=mtlskit tests"
    no_cn = H.expected_values(env.pki.clients["no-cn"].cert)
    assert H.CN not in no_cn
    assert no_cn[H.SUBJECT_DN] == "emailAddress=robot@example.com,serialNumber=42,OU=robots,O=mtlskit tests,ST=Berlin,C=DE"
    every = H.expected_values(env.pki.clients["every-field"].cert)
    assert every[H.SUBJECT_DN] == (r'CN=every-field,OU=\C3\89quipe \CE\A9,O=Acme\, \"Inc\" \+ Co,'
                                   r'L=M\C3\BCnchen,ST=Bayern,C=DE')
    assert every[H.CN] == "every-field"
    two = H.expected_values(env.pki.clients["two-cn"].cert)
    assert two[H.SUBJECT_DN] == r"OU=x\\\,CN=fake,CN=inner,CN=outer,O=mtlskit tests" and two[H.CN] == "inner"


def _log(env, server: str, which: int) -> str:
    return (env.servers[server].options.directory / LOGS[server][which]).read_text(errors="replace")


@pytest.mark.parametrize("server", SERVERS)
def test_logs_explain_accepted_and_refused_clients(env, server):
    srv = env.servers[server]
    alice = env.pki.clients["alice"].cert
    assert _get(srv.port, env, "alice", "1.3").status == 200
    for refused in REFUSED:
        outcome = _get(srv.port, env, refused, "1.3")
        assert outcome.status in (None, 400), outcome
    serial = H.serial_hex(alice.serial_number)
    assert wait_for(lambda: serial in _log(env, server, 0), times=1)
    accepted = [line for line in _log(env, server, 0).splitlines() if serial in line]
    assert "SUCCESS" in accepted[-1] and "CN=alice,OU=engineering,O=mtlskit tests" in accepted[-1]
    for reason in REASONS[server]:
        assert wait_for(lambda: reason in _log(env, server, 1), times=1), _log(env, server, 1)[-3000:]


@pytest.mark.parametrize("server", SERVERS)
def test_include_only_site_logs_in_the_servers_log_directory_and_check_opens_none(env, tmp_path, server):
    """--check of an include-only site passes without writing the server's real log files."""
    name = f"check-{tmp_path.name}".replace("_", "-")[-60:]
    readable = Path(tempfile.mkdtemp(prefix="mtlskit-identity-"))   # pytest's own tmp is 0700: the
    readable.chmod(0o755)                                         # worker must reach the Lua hook
    options = validate(DeployOptions(
        server=server, name=name, directory=readable / "d", listen=parse_listen("127.0.0.1:8443"),
        upstream=parse_upstream("http://127.0.0.1:8000")))
    install(options.directory, deployment_files(
        options, env.pki.server.pem() + env.pki.intermediate.pem(), env.pki.server.key_pem(),
        env.pki.ca_certificates, env.pki.crls()))
    logs = log_files(options)
    site = next(p for p in options.directory.iterdir() if p.name.startswith("mtls") and "identity" not in p.name)
    if server != "haproxy":
        assert logs["access"].startswith("/var/log/") and logs["access"] in site.read_text()
    result = run_check(options, 2)
    assert result.ok, result.output
    assert not any(Path(path).exists() for path in logs.values() if path.startswith("/var/log/"))

TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def test_include_only_nginx_site_runs_with_debians_modules_enabled(env, tmp_path):
    """The site in a Debian-style nginx.conf: its modules come from /etc/nginx/modules-enabled/."""
    enabled = Path("/etc/nginx/modules-enabled")
    needed = ("mod-http-js", "mod-http-headers-more-filter")
    if not all(any(n in p.name for p in enabled.glob("*.conf")) for n in needed):
        pytest.skip("libnginx-mod-http-js / -headers-more-filter not enabled (scripts/system-deps.sh)")
    directory = tmp_path / "site"
    port = free_port()
    options = validate(DeployOptions(
        server="nginx", name="localhost", directory=directory, listen=parse_listen(f"127.0.0.1:{port}"),
        upstream=parse_upstream(env.upstream.url)))
    install(directory, deployment_files(options, env.pki.server.pem() + env.pki.intermediate.pem(),
                                        env.pki.server.key_pem(), env.pki.ca_certificates, env.pki.crls()))
    run = tmp_path / "run"
    run.mkdir()
    site = run / "site.conf"      # the written site, its log files moved out of /var/log/nginx
    site.write_text(site_for_check(options, (directory / "mtls-server.conf").read_text(), run))
    main = run / "nginx.conf"
    main.write_text(f"include {enabled}/*.conf;\ndaemon off;\npid {run}/nginx.pid;\nerror_log {run}/main.log;\n"
                    "events {}\nhttp {\n"
                    + "".join(f"    {kind}_temp_path {run}/{kind};\n" for kind in TEMP_PATHS)
                    + f"    include {site};\n}}\n")
    # Debian's module files name "modules/x.so", relative to its prefix
    process = ServerProcess(["nginx", "-p", "/usr/share/nginx/", "-c", str(main)], port, run / "stdout.log")
    try:
        outcome = _get(port, env, "utf8", "1.2")
        expected = {name.lower(): [value] for name, value in H.expected_values(env.pki.clients["utf8"].cert).items()}
        assert _identity(outcome) == expected
    finally:
        process.close()
