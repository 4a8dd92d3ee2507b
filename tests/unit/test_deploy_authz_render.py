"""The auth_request wiring `deploy nginx --policy` renders (pure: no files, no servers)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from mtlskit.deploy import authz
from mtlskit.deploy.options import DeployOptions, parse_listen, parse_upstream, validate
from mtlskit.deploy.render import render
from mtlskit.errors import UsageError

SECRET = "A" * 43


def _options(**kw) -> DeployOptions:
    base = dict(server="nginx", name="api.example.com", directory=Path("/etc/mtls"),
                listen=parse_listen("0.0.0.0:443"), upstream=parse_upstream("http://127.0.0.1:8000"),
                policy=Path("/etc/policy.toml"), authz_url="http://127.0.0.1:8080", authz_secret=SECRET)
    base.update(kw)
    return validate(DeployOptions(**base))


def _site(options: DeployOptions) -> str:
    return render(options, 2)["mtls-server.conf"]


def test_every_request_is_asked_and_only_nginx_fields_reach_authz():
    site = _site(_options())
    assert "auth_request /.mtlskit-authz;" in site
    assert "auth_request_set $mtlskit_authz_rule $upstream_http_x_mtlskit_authz_rule;" in site
    assert "proxy_set_header X-Client-Authz-Rule $mtlskit_authz_rule;" in site
    internal = site[site.index("location = /.mtlskit-authz {"):]
    internal = internal[:internal.index("}")]
    for line in ("internal;", "auth_request off;", "proxy_pass_request_headers off;", "proxy_pass_request_body off;",
                 'proxy_pass "http://mtlskit_api_example_com_authz/authz";',
                 "proxy_set_header X-Mtlskit-Path $mtlskit_authz_uri;",
                 'include "/etc/mtls/authz-secret.conf";'):
        assert line in internal, line
    assert SECRET not in site
    assert site.count("set $mtlskit_authz_uri $uri;") == 1       # in location /, not at server level


def test_the_secret_file_and_the_record():
    options = _options()
    files = {spec.name: spec for spec in authz.files(dataclasses.replace(options, policy=None))}
    assert files == {}
    recorded = authz.recorded(options)
    assert recorded["policy"] == "/etc/mtls/policy.toml" and SECRET not in str(recorded)
    assert len(recorded["authz_secret_sha256"]) == 64


def test_https_authz_url_checks_serves_certificate():
    site = _site(_options(authz_url="https://pki.internal:8443/base"))
    assert 'proxy_pass "https://mtlskit_api_example_com_authz/base/authz";' in site
    assert 'server "pki.internal:8443";' in site
    assert "proxy_ssl_verify on;" in site and 'proxy_ssl_name "pki.internal";' in site


def test_without_policy_nothing_changes():
    site = _site(_options(policy=None, authz_url=None, authz_secret=None))
    assert "auth_request" not in site and "mtlskit_authz" not in site


@pytest.mark.parametrize("secret", [None, "short", "A" * 42 + '"', "A" * 42 + "\n"])
def test_a_missing_or_malformed_secret_is_refused(secret):
    with pytest.raises(UsageError):
        _options(authz_secret=secret)


def test_existing_secret_is_kept(tmp_path):
    fresh = dataclasses.replace(_options(directory=tmp_path), authz_secret=None)
    first = authz.prepared(fresh, None)
    [secret_file] = [spec for spec in authz.files(dataclasses.replace(first, policy=_policy(tmp_path)))
                     if spec.name == authz.SECRET_FILE]
    assert secret_file.mode == 0o600
    (tmp_path / authz.SECRET_FILE).write_bytes(secret_file.data)
    assert authz.prepared(fresh, None).authz_secret == first.authz_secret
    (tmp_path / authz.SECRET_FILE).write_text("garbage")
    assert authz.prepared(fresh, None).authz_secret not in (None, first.authz_secret)


def test_public_url_is_the_default_authz_url(tmp_path):
    fresh = dataclasses.replace(_options(directory=tmp_path), authz_secret=None, authz_url=None)
    assert authz.prepared(fresh, "http://pki.example:8080/").authz_url == "http://pki.example:8080"
    assert authz.prepared(fresh, None).authz_url is None


def _policy(directory: Path) -> Path:
    path = directory / "source-policy.toml"
    path.write_text('[[rule]]\nname = "a"\nmatch = { cn = ["a"] }\npaths = ["/"]\n')
    return path


def test_check_reads_the_secret_as_the_server_will():
    from mtlskit.deploy.access import startup_files

    assert Path("/etc/mtls/authz-secret.conf") in startup_files(_options())
    assert Path("/etc/mtls/authz-secret.conf") not in startup_files(
        _options(policy=None, authz_url=None, authz_secret=None))
