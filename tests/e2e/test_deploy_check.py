"""Every generated configuration passes the server's own config test (nginx -t,
apache2 -t, haproxy -c), in every mode; and a broken one is reported in the server's words."""

from __future__ import annotations

import itertools
import json
import shutil
import tempfile
from pathlib import Path

import pytest

from mtlskit.deploy.bundle import deployment_files, verify_depth
from mtlskit.deploy.check import run_check
from mtlskit.deploy.install import install
from mtlskit.deploy.options import DeployOptions, parse_listen, parse_route, parse_upstream, validate
from mtlskit.deploy.render import Layout
from tests.support_deploy import build_pki

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def pki():
    return build_pki()


@pytest.fixture
def tmp_path(tmp_path_factory):
    """Like /etc: every parent searchable by the worker user, which --check now verifies
    (pytest's own base directory is 0700)."""
    base = Path(tempfile.mkdtemp(prefix="mtlskit-check-"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def _variants():
    for server, mode, revocation, standalone in itertools.product(
            ["nginx", "apache", "haproxy"], ["required", "optional"], ["crl", "ocsp", "none"], [True, False]):
        if server == "haproxy" and revocation == "ocsp":
            continue          # refused with a message (tested in integration)
        yield pytest.param(server, mode, revocation, standalone,
                           id=f"{server}-{mode}-{revocation}-{'standalone' if standalone else 'site'}")


def _deploy(pki, directory, server, mode, revocation, standalone, routes=True):
    options = validate(DeployOptions(
        server=server, name="api.example.com", directory=directory, listen=parse_listen("127.0.0.1:8443"),
        upstream=parse_upstream("http://127.0.0.1:8000"), mode=mode,
        require_on=("/admin", "/ops/tools") if mode == "optional" else (), revocation=revocation,
        routes=(parse_route("cn=admin:127.0.0.1:8001"), parse_route("ou=ops team:127.0.0.1:8002"))
        + ((parse_route("san=a.example:127.0.0.1:8003"),) if server == "apache" else ()) if routes else (),
        standalone=standalone, ocsp_url="http://127.0.0.1:9/ocsp" if revocation == "ocsp" else None,
        run_user="nobody", run_group="nogroup"))
    install(directory, deployment_files(options, pki.server.pem() + pki.intermediate.pem(),
                                        pki.server.key_pem(), pki.ca_certificates, pki.crls()))
    return options


@pytest.mark.parametrize("server,mode,revocation,standalone", list(_variants()))
def test_generated_configuration_passes_the_servers_own_test(pki, tmp_path, server, mode, revocation, standalone):
    options = _deploy(pki, tmp_path / "d", server, mode, revocation, standalone)
    result = run_check(options, verify_depth(pki.ca_certificates))
    assert result.ran and result.ok, result.output


@pytest.mark.parametrize("server,needle", [
    ("nginx", "nginx: [emerg]"), ("apache", "AH00526: Syntax error"), ("haproxy", "[ALERT]")])
def test_broken_configuration_is_reported_in_the_servers_words(pki, tmp_path, server, needle):
    options = _deploy(pki, tmp_path / "d", server, "required", "crl", standalone=False)
    site = Layout(options.directory, server).site
    site.write_text(site.read_text().replace("client-ca.pem", "missing-ca.pem"))
    result = run_check(options, 2)
    assert result.ran and not result.ok
    assert needle in result.output and "missing-ca.pem" in result.output


# --- through the CLI: `mtlskit deploy --check` ------------------------------------------------

@pytest.mark.parametrize("server", ["nginx", "apache", "haproxy"])
def test_check_runs_the_servers_own_test(fresh_home, tmp_path, cli, server):
    assert cli("--home", fresh_home, "crl").code == 0
    result = cli("--home", fresh_home, "deploy", server, "--name", "c.example.com", "--dir", tmp_path / server,
                 "--listen", "127.0.0.1:8443", "--mode", "optional", "--require-on", "/admin",
                 "--route", "cn=admin:127.0.0.1:8001", "--check", "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["check"]["ran"] and report["check"]["ok"], report["check"]


def test_check_failure_exits_1_with_the_servers_message(ca_home, tmp_path, cli):
    result = cli("--home", ca_home, "deploy", "nginx", "--name", "chk.example.com", "--dir", tmp_path / "n",
                 "--listen", "127.0.0.1:8443", "--revocation", "none",
                 "--upstream", "http://backend.invalid:8000", "--check")
    assert result.code == 1
    first, hint = result.err.splitlines()
    assert first.startswith("error: nginx -t refused the configuration: nginx: [emerg] host not found "
                            'in upstream "backend.invalid"')
    assert hint.startswith("hint: the files are in")
