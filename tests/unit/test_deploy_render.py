"""Pure parts of deploy: option parsing, bundles, rendering (no I/O, no servers)."""

from __future__ import annotations

import fnmatch
import hashlib
import re
import urllib.parse
from pathlib import Path

import pytest

from mtlskit.deploy import headers as H
from mtlskit.deploy.bundle import check_crl_coverage, load_crls, pem_bundle, verify_depth
from mtlskit.deploy.options import (DeployOptions, check_path, parse_listen, parse_route,
                                    parse_upstream, validate)
from mtlskit.deploy.render import MOZILLA_INTERMEDIATE_CIPHERS, default_reload, render, slug
from mtlskit.errors import BadInput, UsageError
from tests.support_deploy import build_pki


@pytest.fixture(scope="module")
def pki():
    return build_pki()


def _options(server="nginx", **kw):
    base = dict(server=server, name="api.example.com", directory=Path("/etc/mtls"),
                listen=parse_listen("0.0.0.0:443"), upstream=parse_upstream("http://127.0.0.1:8000"))
    base.update(kw)
    return validate(DeployOptions(**base))


# --- options ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text,host,port", [
    ("443", "*", 443), (":443", "*", 443), ("0.0.0.0:443", "0.0.0.0", 443),
    ("[::1]:8443", "::1", 8443), ("127.0.0.1:8443", "127.0.0.1", 8443)])
def test_parse_listen(text, host, port):
    endpoint = parse_listen(text)
    assert (endpoint.host, endpoint.port) == (host, port)


@pytest.mark.parametrize("text", ["", "abc", "1.2.3.4:0", "1.2.3.4:70000", "bad host!:443"])
def test_parse_listen_refuses(text):
    with pytest.raises(UsageError):
        parse_listen(text)


def test_parse_upstream_and_route():
    assert parse_upstream("127.0.0.1:8000").url == "http://127.0.0.1:8000"
    assert parse_upstream("https://backend.internal:9443/").url == "https://backend.internal:9443"
    route = parse_route("CN=admin:127.0.0.1:8001")
    assert (route.kind, route.value, route.upstream.url) == ("cn", "admin", "http://127.0.0.1:8001")
    with pytest.raises(UsageError, match="is not http"):
        parse_upstream("http://127.0.0.1:8000/api")
    with pytest.raises(UsageError, match="must be 1-128 letters"):
        parse_route('cn=a"b:127.0.0.1:1')


@pytest.mark.parametrize("path", ["admin", "/a//b", "/a/../b", "/a b", "/a;b"])
def test_require_on_path_refuses(path):
    with pytest.raises(UsageError):
        check_path(path)


def test_require_on_path_normalised():
    assert check_path("/admin/") == "/admin"


# --- bundles ---------------------------------------------------------------------------------

def test_verify_depth_counts_the_cas_above_a_leaf(pki):
    assert verify_depth(pki.ca_certificates) == 2
    assert verify_depth([pki.root.cert]) == 1
    with pytest.raises(BadInput):
        verify_depth([])


def test_crl_coverage_needs_every_ca_root_included(pki):
    root_crl, inter_crl = pki.crls()
    check_crl_coverage(pki.ca_certificates, [root_crl, inter_crl])
    with pytest.raises(BadInput, match="no CRL from CN=mtlskit test root"):
        check_crl_coverage(pki.ca_certificates, [inter_crl])


def test_crl_coverage_checks_the_signature(pki):
    from tests.support_deploy import make_ca, make_crl
    impostor = make_ca("mtlskit test root")          # same name, other key
    with pytest.raises(BadInput):
        check_crl_coverage(pki.ca_certificates, [make_crl(impostor), pki.crls()[1]])


def test_revoked_serials_in_haproxy_spelling(pki):
    from mtlskit.deploy.bundle import haproxy_serial, revoked_serials
    assert [haproxy_serial(n) for n in (1, 0x80, 0xABC, 0x8000)] == ["01", "80", "0ABC", "8000"]
    crls = pki.crls(revoked=["revoked", "bob"])
    expected = sorted(f"{pki.clients[n].cert.serial_number:X}".zfill(32) for n in ("revoked", "bob"))
    assert revoked_serials(crls) == expected


def test_haproxy_checks_revoked_serials_per_request():
    text = render(_options("haproxy"), 2)["mtls.cfg"]
    assert "acl mtls_revoked ssl_c_serial,hex -m str -f '/etc/mtls/revoked-serials.lst'" in text
    assert "http-request deny deny_status 403 if mtls_cert_used mtls_revoked" in text
    assert "revoked-serials" not in render(_options("haproxy", revocation="none"), 2)["mtls.cfg"]


def test_load_crls(pki):
    crls = pki.crls()
    assert [c.issuer for c in load_crls(pem_bundle(crls))] == [c.issuer for c in crls]
    with pytest.raises(BadInput, match="no PEM CRL"):
        load_crls(b"nothing here")


# --- rendering ---------------------------------------------------------------------------------

def test_nginx_required_block(pki):
    text = render(_options("nginx"), 2)["mtls-server.conf"]
    for line in ['listen "0.0.0.0:443" ssl;', "ssl_verify_client on;", "ssl_verify_depth 2;",
                 'ssl_client_certificate "/etc/mtls/client-ca.pem";', 'ssl_crl "/etc/mtls/crl.pem";',
                 "ssl_protocols TLSv1.2 TLSv1.3;", f"ssl_ciphers {MOZILLA_INTERMEDIATE_CIPHERS};",
                 "proxy_set_header X-Client-Verify $ssl_client_verify;",
                 "proxy_set_header X-Client-Cert $ssl_client_escaped_cert;",
                 "proxy_set_header X-Client-Fingerprint-SHA256 $mtlskit_client_fingerprint;",
                 "proxy_set_header X-Client-CN $mtlskit_client_cn;",
                 'js_import mtlskit_identity from "/etc/mtls/mtls-identity.js";',
                 'access_log "/var/log/nginx/mtls-api_example_com-access.log" mtlskit_api_example_com;',
                 'error_log "/var/log/nginx/mtls-api_example_com-error.log" info;',
                 'proxy_pass "http://127.0.0.1:8000";',
                 "ssl_session_cache off;", "ssl_session_tickets off;", "keepalive_time 60s;"]:
        assert line in text, line
    assert "\n    ssl_trusted_certificate" not in text       # only in a comment
    clear = next(line for line in text.splitlines() if line.strip().startswith("more_clear_input_headers"))
    for pattern in ("X-Client-*", "X_Client_*", "X-SSL_*", "SSL_Client*", "X_TLS-*", "X_Forwarded-Client_Cert"):
        assert f" {pattern}" in clear, pattern
    # every client copy is cleared before the request is proxied with ours
    assert text.index("more_clear_input_headers") < text.index("proxy_set_header X-Client-Verify")


def test_nginx_optional_require_on_and_ocsp(pki):
    options = _options("nginx", mode="optional", require_on=("/admin",), revocation="ocsp",
                       ocsp_url="http://ca.example:8080/ocsp")
    text = render(options, 2)["mtls-server.conf"]
    assert "ssl_verify_client optional;" in text
    assert 'location ~* "^(/(;[^/]*)?)*/admin(;[^/]*)?([/?#]|$)" {' in text   # case-insensitive, ;params ignored
    assert "if ($request_uri ~* " in text                         # ambiguous raw paths refused
    assert 'if ($ssl_client_verify != SUCCESS) { return 403 "client certificate required\\n"; }' in text
    assert "ssl_ocsp leaf;" in text and 'ssl_ocsp_responder "http://ca.example:8080/ocsp";' in text
    assert "ssl_ocsp_cache off;" in text     # a cached "good" would outlive a revocation
    assert "ssl_crl" not in text


def test_nginx_route_matches_only_verified_identities():
    text = render(_options("nginx", routes=(parse_route("cn=a.b+c:127.0.0.1:8001"),)), 2)["mtls-server.conf"]
    assert '"~^SUCCESS:(.*[^\\\\\\\\],)?CN=a\\.b\\+c(,|$)" "http://127.0.0.1:8001";' in text
    variable = "$mtlskit_up_" + hashlib.sha256(b"api.example.com").hexdigest()[:12]
    assert f"proxy_pass {variable};" in text and f"map \"$ssl_client_verify:$ssl_client_s_dn\" {variable} {{" in text


def test_apache_vhost():
    files = render(_options("apache", mode="optional", require_on=("/admin",)), 2)
    text = files["mtls-vhost.conf"]
    for line in ['<VirtualHost "0.0.0.0:443">', "SSLVerifyClient optional", "SSLVerifyDepth 2",
                 'SSLCARevocationFile "/etc/mtls/crl.pem"', "SSLCARevocationCheck chain",
                 "SSLProtocol -all +TLSv1.2 +TLSv1.3", "LogLevel ssl:info",
                 'ErrorLog "/var/log/apache2/mtls-api_example_com-error.log"',
                 """Require expr "%{SSL_CLIENT_VERIFY} == 'SUCCESS'\"""",
                 'LuaHookFixups "/etc/mtls/mtls-identity.lua" identity',
                 "SSLSessionTickets off", "SSLSessionCacheTimeout 0", "MaxKeepAliveRequests 100"]:
        assert line in text, line
    assert 'CustomLog "/var/log/apache2/mtls-api_example_com-access.log" "' in text
    assert "RequestHeader set X-Client" not in text and "RequestHeader unset" not in text
    lua = files["mtls-identity.lua"]
    assert "function identity(r)" in lua
    assert 'local FAMILY_PREFIXES = { "x-client-", "x-ssl-", "ssl-client", "x-tls-", }' in lua
    # the family is removed before the first identity header is set
    assert lua.index("r.headers_in[name] = nil") < lua.index('r.headers_in["X-Client-Verify"]')
    assert "SSLVerifyClient require" in render(_options("apache"), 2)["mtls-vhost.conf"]


def test_haproxy_standalone_has_admin_socket_and_default_socket_reload():
    options = _options("haproxy", standalone=True, listen=parse_listen(":443"))
    files = render(options, 2)
    assert list(files) == ["haproxy.cfg"]
    text = files["haproxy.cfg"]
    assert "stats socket '/etc/mtls/admin.sock' mode 600 level admin" in text
    assert "tune.ssl.cachesize 0" in text          # no resumption past a revocation
    assert "bind ':443' ssl crt '/etc/mtls/server.pem' ca-file '/etc/mtls/client-ca.pem' verify required " \
           "crl-file '/etc/mtls/crl.pem' ssl-min-ver TLSv1.2" in text
    assert text.index("del-header '(?i)^(x[-_]client[-_]|") < text.index("set-header X-Client-Verify")
    assert "log stdout format raw local0 info" in text and "log global" in text
    assert default_reload(options) == "socket:/etc/mtls/admin.sock"
    assert default_reload(_options("haproxy")) == "socket:/run/haproxy/admin.sock"   # Debian's haproxy.cfg


def test_default_reloads_signal_the_pid_of_the_pidfile_and_never_start_a_server():
    assert default_reload(_options("nginx")) == "signal:HUP:nginx:/run/nginx.pid"
    assert default_reload(_options("nginx", standalone=True)) == "signal:HUP:nginx:/etc/mtls/nginx.pid"
    assert default_reload(_options("apache")) == "signal:USR1:apache2:/run/apache2/apache2.pid"
    assert default_reload(_options("apache", standalone=True)) == "signal:USR1:apache2:/etc/mtls/apache.pid"
    for server in ("nginx", "apache"):     # the pidfile default_reload reads is the one the config writes
        options = _options(server, standalone=True)
        main = render(options, 2)[{"nginx": "nginx.conf", "apache": "httpd.conf"}[server]]
        assert default_reload(options).rsplit(":", 1)[1] in main


def test_standalone_nginx_keeps_everything_in_the_directory():
    text = render(_options("nginx", standalone=True), 2)["nginx.conf"]
    assert "daemon off;" in text and 'pid "/etc/mtls/nginx.pid";' in text
    assert 'include "/etc/mtls/mtls-server.conf";' in text
    assert "load_module /usr/lib/nginx/modules/ngx_http_js_module.so;" in text
    assert "/var/" not in text
    site = render(_options("nginx", standalone=True), 2)["mtls-server.conf"]
    assert 'access_log "/etc/mtls/access.log" mtlskit_api_example_com;' in site
    assert 'error_log "/etc/mtls/error.log" info;' in site


def test_revocation_none_says_so_in_every_server():
    for server in ("nginx", "apache", "haproxy"):
        text = "\n".join(render(_options(server, revocation="none"), 2).values())
        assert "revoked client certificates are NOT refused" in text
        assert "crl.pem" not in text


def test_header_names_are_documented_once():
    assert H.IDENTITY_HEADERS == ("X-Client-Verify", "X-Client-Subject-DN", "X-Client-Issuer-DN", "X-Client-CN",
                                  "X-Client-Serial", "X-Client-Fingerprint-SHA256", "X-Client-Cert")
    for name in H.IDENTITY_HEADERS:
        assert f"``{name}``" in H.__doc__
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    for name in H.IDENTITY_HEADERS:
        assert f"`{name}`" in readme, name


@pytest.mark.parametrize("name, removed", [
    ("X-Client-Verify", True), ("x_client-subject-dn", True), ("X_Client_Role", True), ("X-SSL-Client-DN", True),
    ("ssl_client_verify", True), ("SSL-ClientCert", True), ("X-TLS-Verified", True), ("x_tls_anything", True),
    ("X-Forwarded-Client-Cert", True), ("x_forwarded_client_cert", True), ("X-Forwarded-Client-Certs", False),
    ("X-Clientele", False), ("X-SSLx", False), ("SSL-Clien", False), ("X-Forwarded-For", False),
])
def test_identity_family(name, removed):
    assert H.in_family(name) is removed
    # the HAProxy regex and the nginx patterns agree with the rule
    assert bool(re.match(H.HAPROXY_FAMILY_REGEX, name.lower())) is removed
    assert any(fnmatch.fnmatchcase(name.lower(), p.lower()) for p in H.nginx_clear_patterns()) is removed


def test_spellings_cover_every_separator():
    assert sorted(H.spellings("X-TLS-")) == ["X-TLS-", "X-TLS_", "X_TLS-", "X_TLS_"]
    assert len(H.spellings("X-Forwarded-Client-Cert")) == 8


@pytest.mark.parametrize("value, printed", [
    ("alice", "alice"), ("Doe, John", "Doe\\, John"), ("#1", "\\#1"), (" a ", "\\ a\\ "),
    ("a+b=c", "a\\+b=c"), ('"<;>\\', '\\"\\<\\;\\>\\\\'), ("é", "\\C3\\A9"), ("a\nb", "a\\0Ab"),
])
def test_dn_values_are_escaped_as_openssl_prints_them(value, printed):
    assert H.escape_dn_value(value) == printed


def test_serial_hex_has_two_digits_per_byte_and_one_case():
    assert H.serial_hex(0x0A1B) == "0A1B"
    assert H.serial_hex(0xFF01) == "FF01"
    assert H.serial_hex(0) == "00"


def test_escaped_pem_survives_a_form_decoder():
    pem = "-----BEGIN CERTIFICATE-----\nab+/cd==\n-----END CERTIFICATE-----\n"
    escaped = H.escape_pem(pem)
    assert escaped == "-----BEGIN%20CERTIFICATE-----%0Aab%2B%2Fcd%3D%3D%0A-----END%20CERTIFICATE-----%0A"
    assert urllib.parse.unquote_plus(escaped) == pem


def test_slug():
    assert slug("api.example.com") == "api_example_com"
    assert slug("***") == "mtls"
