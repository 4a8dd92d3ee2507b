"""`deploy nginx --policy`: every hostile or malformed policy, option and combination is a
one-line error, exit 2, with nothing written; what is written keeps the secret private."""

from __future__ import annotations

import json
import os
import stat

import pytest

from mtlskit.config import load_settings
from mtlskit.deploy.records import list_deployments
from mtlskit.service import Service

pytestmark = pytest.mark.security

GOOD = '[[rule]]\nname = "admins"\nmatch = { cn = ["alice"] }\npaths = ["/admin/"]\n'


def _state(home) -> tuple[int, int]:
    service = Service.open(load_settings(home))
    return service.inventory.count(), len(list_deployments(service.inventory))


def _deploy(cli, home, directory, *extra, server="nginx"):
    return cli("--home", home, "deploy", server, "--name", "authz.example.com", "--dir", directory,
               "--listen", "127.0.0.1:8443", "--revocation", "none", *extra)


def _refused(result) -> str:
    lines = result.err.splitlines()
    assert result.code == 2, (result.code, result.out, result.err)
    assert lines[0].startswith("error: ") and "Traceback" not in result.err
    assert len(lines) == 1 or (len(lines) == 2 and lines[1].startswith("hint: ")), result.err
    return lines[0]


@pytest.mark.parametrize("text, says", [
    ('[[rule]]\nname = "a"\nmatch = { cn = ["*"] }\npaths = ["/"]\n', "matches too much"),
    ('[[rule]]\nname = "a"\nmatch = { cn = ["a\\nb"] }\npaths = ["/"]\n', "control character"),
    ('[[rule]]\nname = "a"\nmatch = { cn = ["a\\"; }"] }\npaths = ["/"]\n', "quote"),
    ('[[rule]]\nname = "a"\nmatch = { cn = ["a"] }\npaths = ["/x\\";\\nreturn 200;"]\n', "control character"),
    ('[[rule]]\nname = "a"\nmatch = { cn = ["a"] }\npaths = ["/$host"]\n', "absolute URL path"),
    ('[[rule]]\nname = "a\\nb"\nmatch = { cn = ["a"] }\npaths = ["/"]\n', "name must be"),
    ('[[rule]]\n', "is empty"),
    ('[[rule]]\nname = "a"\nmatch = { cn = ["a"] }\npaths = ["/"]\nallow = true\n', "unknown key"),
    ('[[rule]]\nname = "a"\nmatch = { cn = "a" }\npaths = ["/"]\n', "list of strings"),
    ('[[rule]]\nname = "a"\nmatch = { cn = ["a"] }\npaths = ["/"]\nmethods = ["GET\\r\\n"]\n', "control character"),
    ("", "no [[rule]]"),
    ("[rule\n", "not a TOML file"),
])
def test_a_bad_policy_is_refused_before_anything_is_written(ca_home, tmp_path, cli, text, says):
    policy = tmp_path / "policy.toml"
    policy.write_text(text)
    before = _state(ca_home)
    line = _refused(_deploy(cli, ca_home, tmp_path / "dep", "--policy", policy, "--authz-url", "http://127.0.0.1:8080"))
    assert says in line and str(policy) in line
    assert not (tmp_path / "dep").exists() and _state(ca_home) == before


@pytest.mark.parametrize("make", ["missing", "directory", "fifo", "huge"])
def test_a_policy_that_is_not_a_readable_file_is_refused(ca_home, tmp_path, cli, make):
    policy = tmp_path / "policy.toml"
    if make == "directory":
        policy.mkdir()
    elif make == "fifo":
        os.mkfifo(policy)
    elif make == "huge":
        policy.write_bytes(b"#" * (2 * 1024 * 1024))
    line = _refused(_deploy(cli, ca_home, tmp_path / "dep", "--policy", policy, "--authz-url", "http://127.0.0.1:8080"))
    assert "cannot be read" in line and not (tmp_path / "dep").exists()


@pytest.mark.parametrize("url", ['http://127.0.0.1:8080/a"b', "http://127.0.0.1:8080/$uri", "http://127.0.0.1:8080\n",
                                 "http://127.0.0.1:8080/;x", "ftp://127.0.0.1/", "http://user@127.0.0.1/",
                                 "http://127.0.0.1:8080/?x", "http://127.0.0.1:99999"])
def test_a_hostile_authz_url_is_refused(ca_home, tmp_path, cli, url):
    policy = tmp_path / "policy.toml"
    policy.write_text(GOOD)
    line = _refused(_deploy(cli, ca_home, tmp_path / "dep", "--policy", policy, "--authz-url", url))
    assert "--authz-url" in line and not (tmp_path / "dep").exists()


@pytest.mark.parametrize("server, extra, says", [
    ("apache", (), "--policy is for nginx"),
    ("haproxy", (), "--policy is for nginx"),
    ("nginx", ("--upstream", "tcp://127.0.0.1:5432"), "tcp://"),
])
def test_policy_only_where_nginx_sees_http(ca_home, tmp_path, cli, server, extra, says):
    policy = tmp_path / "policy.toml"
    policy.write_text(GOOD)
    line = _refused(_deploy(cli, ca_home, tmp_path / "dep", "--policy", policy, "--authz-url",
                            "http://127.0.0.1:8080", *extra, server=server))
    assert says in line and not (tmp_path / "dep").exists()


def test_policy_needs_to_know_where_serve_answers(ca_home, tmp_path, cli):
    policy = tmp_path / "policy.toml"
    policy.write_text(GOOD)
    line = _refused(_deploy(cli, ca_home, tmp_path / "dep", "--policy", policy))
    assert "--policy needs the URL of `mtlskit serve`" in line
    assert not (tmp_path / "dep").exists()
    line = _refused(_deploy(cli, ca_home, tmp_path / "dep", "--authz-url", "http://127.0.0.1:8080"))
    assert "only makes sense with --policy" in line


def test_the_secret_is_private_and_recorded_only_as_a_hash(fresh_home, tmp_path, cli):
    policy = tmp_path / "policy.toml"
    policy.write_text(GOOD)
    result = _deploy(cli, fresh_home, tmp_path / "dep", "--policy", policy, "--authz-url", "http://127.0.0.1:8080",
                     "--json")
    assert result.code == 0, result.err
    secret_file = tmp_path / "dep" / "authz-secret.conf"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    secret = secret_file.read_text().split('"')[1]
    assert len(secret) == 43
    site = (tmp_path / "dep" / "mtls-server.conf").read_text()
    assert secret not in site and "auth_request /.mtlskit-authz;" in site
    assert f'include "{secret_file}";' in site
    assert secret not in result.out and secret not in result.err
    [record] = list_deployments(Service.open(load_settings(fresh_home)).inventory)
    assert secret not in json.dumps(record.options)
    assert record.options["policy"] == str(tmp_path / "dep" / "policy.toml")
    assert (tmp_path / "dep" / "policy.toml").read_text() == GOOD
    assert json.loads(result.out)["policy"] == record.options["policy"]
