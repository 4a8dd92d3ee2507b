"""One --dir holds one server's deployment: a second server type is refused (issue 10)."""

from __future__ import annotations

import pytest

from mtlskit.config import load_settings
from mtlskit.deploy.records import list_deployments
from mtlskit.service import Service


def _snapshot(directory):
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def _deploy(cli, home, server, directory, *extra):
    return cli("--home", home, "deploy", server, "--name", "api.example.com", "--dir", directory,
               "--listen", "127.0.0.1:8443", "--upstream", "127.0.0.1:8000", "--revocation", "none", *extra)


@pytest.mark.parametrize("first,second", [("nginx", "apache"), ("apache", "haproxy"), ("haproxy", "nginx")])
def test_second_server_type_in_the_same_dir_is_refused_and_nothing_written(fresh_home, tmp_path, cli,
                                                                          first, second):
    target = tmp_path / "d"
    assert _deploy(cli, fresh_home, first, target, "--standalone").code == 0
    before = _snapshot(target)
    events = len(Service.open(load_settings(fresh_home)).inventory.events())

    refused = _deploy(cli, fresh_home, second, target, "--standalone")

    assert refused.code == 2
    assert refused.err.splitlines()[0] == (f"error: {target} already holds the {first} deployment of "
                                           "'api.example.com'; one directory holds one server")
    assert _snapshot(target) == before
    service = Service.open(load_settings(fresh_home))
    assert [(d.server, d.directory) for d in list_deployments(service.inventory)] == [(first, target)]
    assert len(service.inventory.events()) == events
    assert _deploy(cli, fresh_home, first, target, "--standalone").code == 0     # same server: fine


def test_unrecorded_configuration_of_another_server_is_refused(fresh_home, tmp_path, cli):
    target = tmp_path / "d"
    target.mkdir()
    (target / "nginx.conf").write_text("# someone's nginx\n")
    refused = _deploy(cli, fresh_home, "haproxy", target)
    assert refused.code == 2
    assert "already holds a nginx configuration (nginx.conf)" in refused.err.splitlines()[0]
    assert sorted(p.name for p in target.iterdir()) == ["nginx.conf"]


def test_a_name_whose_identifier_collides_with_a_deployed_one_is_refused(fresh_home, tmp_path, cli):
    """api.example.com and api-example.com both give api_example_com: log files and formats
    named by it would be shared by the two sites."""
    assert _deploy(cli, fresh_home, "nginx", tmp_path / "one").code == 0
    refused = cli("--home", fresh_home, "deploy", "nginx", "--name", "api-example.com", "--dir", tmp_path / "two",
                  "--listen", "127.0.0.1:8444", "--upstream", "127.0.0.1:8000", "--revocation", "none")
    assert refused.code == 2 and "same configuration identifier 'api_example_com'" in refused.err
    assert not (tmp_path / "two").exists()


def test_a_long_name_with_routes_passes_nginx_check(fresh_home, tmp_path, cli):
    import shutil
    import tempfile
    from pathlib import Path

    if shutil.which("nginx") is None:
        pytest.skip("nginx is not installed")
    name = "a" * 30 + ".very-long-service-name.example"   # 61 characters
    readable = Path(tempfile.mkdtemp(prefix="mtlskit-long-"))   # the worker user must enter it
    readable.chmod(0o755)
    result = cli("--home", fresh_home, "deploy", "nginx", "--name", name, "--dir", readable / "long",
                 "--listen", "127.0.0.1:8445", "--revocation", "none", "--route", "cn=admin:127.0.0.1:8001",
                 "--standalone", "--check")
    try:
        assert result.code == 0, result.err
    finally:
        shutil.rmtree(readable)
