"""Every path a standalone configuration names exists once it runs (issue 10: the
standalone HAProxy file told operators to load a site file that is never written)."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import pytest

from mtlskit.deploy.bundle import deployment_files
from mtlskit.deploy.install import install
from mtlskit.deploy.options import DeployOptions, parse_listen, parse_upstream, validate
from mtlskit.deploy.render import Layout
from tests.support_deploy import EchoUpstream, ServerProcess, build_pki, free_port, get, start_command

pytestmark = pytest.mark.e2e

# An absolute path not inside a URL (http://host/...) or a word; stops at quotes, ;, ( and spaces.
PATH = re.compile(r"(?<![\w.:/%<-])(/[A-Za-z0-9._/-]+)")
# Names a server creates only in shared memory, never on disk (Apache's shmcb session cache).
SHARED_MEMORY = ("ssl_scache",)
# haproxy.log is where the printed start line sends HAProxy's stdout (its shell creates it).
MADE_BY_THE_START_LINE = {"haproxy": {"haproxy.log"}}


def named_paths(text: str) -> set[Path]:
    return {Path(p.rstrip(".")) for p in PATH.findall(text)
            if p != "/" and not p.endswith(SHARED_MEMORY)}


@pytest.mark.parametrize("server", ["nginx", "apache", "haproxy"])
@pytest.mark.parametrize("revocation", ["crl", "none"])
def test_every_path_a_standalone_configuration_names_exists(server, revocation):
    pki = build_pki()
    base = Path(tempfile.mkdtemp(prefix="mtlskit-paths-"))
    base.chmod(0o755)
    upstream = EchoUpstream("default")
    try:
        port = free_port()
        options = validate(DeployOptions(
            server=server, name="localhost", directory=base / server, listen=parse_listen(f"127.0.0.1:{port}"),
            upstream=parse_upstream(upstream.url), revocation=revocation, standalone=True))
        files = deployment_files(options, pki.server.pem() + pki.intermediate.pem(), pki.server.key_pem(),
                                 pki.ca_certificates, pki.crls())
        install(options.directory, files)
        ca, alice = base / "ca.pem", pki.write_client(base, "alice")
        ca.write_bytes(pki.root.pem())
        process = ServerProcess(start_command(server, options.directory), port, base / "out.log")
        try:
            assert get(port, "/", ca, alice).status == 200
            configs = [options.directory / f.name for f in files if f.name.endswith((".conf", ".cfg"))]
            named = set().union(*(named_paths(p.read_text()) for p in configs))
            missing = sorted(str(p) for p in named if not p.exists() and p.name not in MADE_BY_THE_START_LINE.get(server, ()))
        finally:
            process.close()
        assert Layout(options.directory, server).main in configs
        assert options.directory / "server.pem" in named       # the extraction sees the real paths
        assert missing == []
    finally:
        upstream.close()
        shutil.rmtree(base, ignore_errors=True)
