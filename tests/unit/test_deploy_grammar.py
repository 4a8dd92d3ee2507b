"""The strict value grammar of `deploy` and the per-server quoting filters (pure)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from mtlskit.deploy import grammar, quoting
from mtlskit.deploy.options import (DeployOptions, check_directory, check_path, parse_listen, parse_route,
                                    parse_upstream)
from mtlskit.deploy.render import render
from mtlskit.errors import MtlskitError, UsageError
from mtlskit.pki import names


@pytest.mark.parametrize("text", ["443\n", "443 ", " 443", "127.0.0.1:443\n", "[::1]:443\n", "0:443;",
                                  "127.0.0.1:443#", "fe80::1%eth0:443", "[fe80::1%eth0]:443", "\u0661\u0662",
                                  "a b:443", "{}:443", "${X}:443"])
def test_listen_refuses_trailing_newlines_and_syntax(text):
    with pytest.raises(UsageError, match="--listen"):
        parse_listen(text)


@pytest.mark.parametrize("text", ["http://127.0.0.1:8000\n", "http://exa\nmple.com:80", "http://h:80/\n",
                                  "http://u@h:80", "http://h:80?x", "http://h:80#x", "http://h:80/api",
                                  "http://h;x:80", "http://[::1%lo]:80", "h:80 ", "http://h:0", "http://h:65536",
                                  "http://-h:80", "http://h\u0430:80", "http://${X}:80", "ftp://h:21"])
def test_upstream_refuses_what_urlsplit_would_clean_up(text):
    with pytest.raises(UsageError, match="--upstream"):
        parse_upstream(text)


@pytest.mark.parametrize("text,url", [("127.0.0.1:8000", "http://127.0.0.1:8000"),
                                      ("https://api_1.svc:8443/", "https://api_1.svc:8443"),
                                      ("http://[::1]", "http://[::1]:80"), ("https://h", "https://h:443")])
def test_upstream_accepts_plain_hosts(text, url):
    assert parse_upstream(text).url == url


@pytest.mark.parametrize("text", ["cn=admin:127.0.0.1:9001\n", "cn=admin\n:127.0.0.1:9001", "cn=ad'min:h:1",
                                  'cn=ad"min:h:1', "cn=a$b:h:1", "cn= admin:h:1", "cn=admin :h:1", "cn=:h:1",
                                  "cn=a\\b:h:1", "cn=a%{X}:h:1", "cn=a{b}:h:1"])
def test_route_refuses_hostile_values(text):
    with pytest.raises(UsageError, match="--route"):
        parse_route(text)


def test_route_value_may_hold_inner_spaces():
    assert parse_route("cn=John Smith:127.0.0.1:9001").value == "John Smith"


@pytest.mark.parametrize("path", ["/admin\n", "/admin;x", "/ad min", "/a{b}", "/a$b", "/a%2e", "/a/../b",
                                  "/a//b", "admin", "/a#b", "/a'b"])
def test_require_on_refuses_hostile_paths(path):
    with pytest.raises(UsageError, match="--require-on"):
        check_path(path)


@pytest.mark.parametrize("path", ["/srv/a b", "/srv/a;b", "/srv/a$b", "/srv/${X}", "/srv/%{X}", "/srv/a#b",
                                  "/srv/a\"b", "/srv/a'b", "/srv/a,b", "/srv/a\\b", "/srv/a\nb", "/srv/a/../b", "/srv/\u0430",
                                  "/srv/" + "a" * 1100, ""])
def test_dir_refuses_what_a_configuration_would_read_as_syntax(path):
    with pytest.raises(UsageError, match="--dir"):
        check_directory(path)


def test_dir_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert check_directory("deploy") == tmp_path / "deploy"
    assert check_directory("/srv/mtls/a_b-c.d@e+g=h~") == Path("/srv/mtls/a_b-c.d@e+g=h~")


@pytest.mark.parametrize("command", ["nginx -s reload; rm -rf /", "systemctl reload nginx\n", "a  b", " a",
                                     "a $X", "a `b`", "a 'b c'", "a|b", "a > b", "a&", "socket:relative",
                                     "socket:/x y", ""])
def test_reload_refuses_shell_syntax(command):
    with pytest.raises(UsageError, match="--reload"):
        grammar.check_reload(command)


@pytest.mark.parametrize("command", ["nginx -s reload", "systemctl reload nginx@blue.service",
                                     "socket:/srv/mtls/admin.sock", "/usr/local/bin/reload-mtls --fast"])
def test_reload_accepts_plain_command_lines(command):
    assert grammar.check_reload(command) == command


@pytest.mark.parametrize("value,nginx,apache,haproxy", [
    ("/srv/mtls/crl.pem", '"/srv/mtls/crl.pem"', '"/srv/mtls/crl.pem"', "'/srv/mtls/crl.pem'"),
    ('a"b\\c', '"a\\"b\\\\c"', '"a\\"b\\\\c"', "'a\"b\\c'"),
    ("a;b{c}#d", '"a;b{c}#d"', '"a;b{c}#d"', "'a;b{c}#d'"),
])
def test_each_server_quotes_in_its_own_syntax(value, nginx, apache, haproxy):
    assert quoting.nginx_quote(value) == nginx
    assert quoting.apache_quote(value) == apache
    assert quoting.haproxy_quote(value) == haproxy


@pytest.mark.parametrize("quote,value", [
    (quoting.nginx_quote, "$host"), (quoting.apache_quote, "${X}"), (quoting.apache_quote, "%{X}"),
    (quoting.haproxy_quote, "a'b"), (quoting.nginx_quote, "a\nb"), (quoting.apache_quote, "a\rb"),
    (quoting.haproxy_quote, "a\x00b"), (quoting.nginx_quote, "a\u2028b"), (quoting.haproxy_quote, ""),
])
def test_what_a_server_cannot_quote_is_refused(quote, value):
    with pytest.raises(UsageError, match="cannot be written safely"):
        quote(value)


def test_apache_keeps_rewrite_backreferences():
    assert quoting.apache_quote("http://h:1/$1") == '"http://h:1/$1"'


def _options(server: str) -> DeployOptions:
    return DeployOptions(server=server, name="api.example.com", directory=Path("/etc/mtls"),
                         listen=parse_listen("127.0.0.1:443"), upstream=parse_upstream("127.0.0.1:8000"))


@pytest.mark.parametrize("server", ["nginx", "apache", "haproxy"])
@pytest.mark.parametrize("field,value", [
    ("name", "x.example.com\n    bind :9999"), ("name", "a;b"), ("directory", Path("/etc/a b")),
    ("directory", Path("/etc/${X}")), ("reload_command", "true; rm -rf /"), ("ocsp_url", "http://h/\nx"),
    ("run_user", "www-data\nUser root"), ("require_on", ("/admin\n",)),
])
def test_render_refuses_options_that_bypassed_the_parsers(server, field, value):
    """Options built by hand (an API, a test) get the same grammar: render checks them itself."""
    options = dataclasses.replace(_options(server), **{field: value}, standalone=True)
    with pytest.raises(MtlskitError):
        render(options, 2)


@pytest.mark.parametrize("name", ["node@site_1", "a-b.c", "X"])
def test_names_are_identifiers(name):
    assert names.check_name(name) == name
