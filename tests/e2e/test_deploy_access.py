"""`--check` finds files the server's worker user cannot open (issue 10).

Started as root, nginx and apache read their keys as root and then serve as an
unprivileged user: a deployment under a 0700 parent passes `nginx -t` / `apache2 -t`
(run as root) and then fails every request that needs a file at request time. The real
servers, started as root here, show the failure; `--check` names the path in one line.
"""

from __future__ import annotations

import http.client
import os
import shutil
import ssl
import tempfile
import types
from pathlib import Path

import pytest

from mtlskit.deploy.bundle import deployment_files, verify_depth
from mtlskit.deploy.check import run_check
from mtlskit.deploy.install import install
from mtlskit.deploy.options import DeployOptions, parse_listen, parse_upstream, validate
from tests.support_deploy import EchoUpstream, ServerProcess, build_pki, free_port, get, start_command

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the servers drop privileges")]

WORKER = {"nginx": "nobody", "apache": "www-data"}


@pytest.fixture(scope="module")
def world():
    pki = build_pki()
    base = Path(tempfile.mkdtemp(prefix="mtlskit-access-"))
    base.chmod(0o755)
    ns = types.SimpleNamespace(pki=pki, base=base, locked=base / "locked", upstream=EchoUpstream("default"),
                               ca=base / "root.pem", alice=pki.write_client(base, "alice"))
    ns.ca.write_bytes(pki.root.pem())
    ns.locked.mkdir(mode=0o700)
    yield ns
    ns.upstream.close()
    shutil.rmtree(base, ignore_errors=True)


def _deploy(world, server: str) -> DeployOptions:
    options = validate(DeployOptions(
        server=server, name="localhost", directory=world.locked / server,
        listen=parse_listen(f"127.0.0.1:{free_port()}"), upstream=parse_upstream(world.upstream.url),
        standalone=True, run_user="www-data", run_group="www-data"))
    install(options.directory, deployment_files(
        options, world.pki.server.pem() + world.pki.intermediate.pem(), world.pki.server.key_pem(),
        world.pki.ca_certificates, world.pki.crls()))
    return options


def _request(server: str, port: int, world) -> int | None:
    """What a verified client gets on the request that needs a worker-side file."""
    if server == "apache":       # mod_lua loads the fingerprint hook for each verified request
        return get(port, "/", world.ca, world.alice).status
    ctx = ssl.create_default_context(cafile=str(world.ca))
    ctx.check_hostname = False
    ctx.load_cert_chain(*map(str, world.alice))
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    try:                          # a body over client_body_buffer_size goes to client_body_temp/
        conn.request("POST", "/", body=b"x" * 200_000)
        return conn.getresponse().status
    finally:
        conn.close()


@pytest.mark.parametrize("server", ["apache", "nginx"])
def test_check_names_the_path_the_worker_cannot_open(world, server):
    options = _deploy(world, server)
    depth = verify_depth(world.pki.ca_certificates)
    world.locked.chmod(0o700)
    process = ServerProcess(start_command(server, options.directory), options.listen.port,
                            world.base / f"{server}.log")
    try:
        broken = _request(server, options.listen.port, world)
        result = run_check(options, depth)
        world.locked.chmod(0o755)
        fixed = _request(server, options.listen.port, world)
        fixed_result = run_check(options, depth)
    finally:
        world.locked.chmod(0o755)
        process.close()
    assert broken == 500                           # the failure --check must predict
    assert not result.ok and "\n" not in result.unreadable
    assert result.unreadable.startswith(f"the {server} worker user {WORKER[server]} cannot ")
    assert f"{world.locked} is mode 0700 owned by root:root" in result.unreadable
    assert fixed != 500                            # apache 200; nginx proxies (the echo answers 501)
    assert fixed_result.ok and fixed_result.unreadable is None, fixed_result


def test_haproxy_reads_everything_before_it_drops_privileges(world):
    options = _deploy(world, "haproxy")
    world.locked.chmod(0o700)
    try:
        result = run_check(options, verify_depth(world.pki.ca_certificates))
    finally:
        world.locked.chmod(0o755)
    assert result.ok and result.unreadable is None, result


def test_cli_check_fails_in_one_line(fresh_home, world, cli):
    world.locked.chmod(0o700)
    try:
        result = cli("--home", fresh_home, "deploy", "apache", "--name", "localhost", "--standalone",
                     "--dir", world.locked / "cli", "--listen", "127.0.0.1:8443", "--revocation", "none",
                     "--check")
    finally:
        world.locked.chmod(0o755)
    assert result.code == 1
    first, hint = result.err.splitlines()
    assert first == (f"error: the apache worker user www-data cannot read {world.locked}/cli/mtls-identity.lua: "
                     f"{world.locked} is mode 0700 owned by root:root")
    assert hint.startswith("hint: make the path readable")
