"""A standalone configuration also runs as an unprivileged user (here: nobody)."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from mtlskit.deploy.bundle import deployment_files
from mtlskit.deploy.install import install
from mtlskit.deploy.options import DeployOptions, parse_listen, parse_upstream, validate
from tests.support_deploy import EchoUpstream, ServerProcess, build_pki, free_port, get, start_command

pytestmark = pytest.mark.e2e


def _as_nobody() -> list[str]:
    if os.geteuid() != 0:
        return []                                   # already unprivileged
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is needed to drop to nobody")
    return ["setpriv", "--reuid=nobody", "--regid=" + str(pwd.getpwnam("nobody").pw_gid), "--clear-groups"]


@pytest.mark.parametrize("server", ["nginx", "apache", "haproxy"])
def test_standalone_runs_unprivileged(server):
    pki = build_pki()
    base = Path(tempfile.mkdtemp(prefix="mtlskit-nobody-"))
    base.chmod(0o755)
    upstream = EchoUpstream("default")
    try:
        port = free_port()
        options = validate(DeployOptions(
            server=server, name="localhost", directory=base / server, listen=parse_listen(f"127.0.0.1:{port}"),
            upstream=parse_upstream(upstream.url), standalone=True, run_user="nobody", run_group="nogroup"))
        install(options.directory, deployment_files(
            options, pki.server.pem() + pki.intermediate.pem(), pki.server.key_pem(), pki.ca_certificates,
            pki.crls()))
        prefix = _as_nobody()
        if prefix:
            subprocess.run(["chown", "-R", "nobody", str(options.directory)], check=True)
        ca = base / "ca.pem"
        ca.write_bytes(pki.root.pem())
        alice = pki.write_client(base, "alice")
        process = ServerProcess(prefix + start_command(server, options.directory), port, base / "out.log")
        try:
            assert get(port, "/", ca, alice).status == 200
            assert get(port, "/", ca, None).status in (400, None)     # still mTLS
        finally:
            process.close()
    finally:
        upstream.close()
        shutil.rmtree(base, ignore_errors=True)
