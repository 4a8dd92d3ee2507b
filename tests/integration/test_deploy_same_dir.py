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
