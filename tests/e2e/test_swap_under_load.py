"""A server certificate, a CRL and a client-CA bundle replaced in a running Nginx, Apache
and HAProxy while the load client (tests/support_load.py) sends mTLS requests: zero failed
requests, and the new certificate is what new handshakes get afterwards.

The certificate goes the way a renewal takes: a second certificate for the same NAME,
installed by `mtlskit deploy --cert-dir` into the deployment, applied to the running
server (nginx HUP, Apache graceful USR1, HAProxy: a seamless reload of its master).
"""

from __future__ import annotations

import shutil
import tempfile
import time
import types
from pathlib import Path

import pytest
from cryptography import x509

from mtlskit.cli.app import main
from mtlskit.deploy.install import FileSpec, install
from mtlskit.deploy.records import list_deployments
from mtlskit.deploy.refresh import apply_change
from mtlskit.errors import BadInput
from mtlskit.config import load_settings
from mtlskit.service import Service
from tests.support_deploy import EchoUpstream, wait_for
from tests.support_load import LoadRun
from tests.support_swap import SwapSite

pytestmark = pytest.mark.e2e

LOAD_SECONDS = 2.0
#: (TLS version, keep-alive): the two ends of what a reload can break
MODES = [("1.3", True), ("1.2", False)]


@pytest.fixture(scope="module")
def upstream():
    echo = EchoUpstream("default")
    yield echo
    echo.close()


@pytest.fixture(scope="module", params=["nginx", "apache", "haproxy"])
def site(request, upstream):
    base = Path(tempfile.mkdtemp(prefix=f"mtlskit-swap-{request.param}-"))
    base.chmod(0o755)          # Apache's unprivileged children read mod_lua's script
    swap = SwapSite(base, request.param, upstream.url)
    yield swap
    swap.close()
    shutil.rmtree(base, ignore_errors=True)


def _during_load(site: SwapSite, action, tls: str = "1.3", keepalive: bool = True):
    """Run ``action`` once the load client has run for a third of its time; return
    (what action returned, the load result)."""
    run = LoadRun(site.load_spec(tls=tls, keepalive=keepalive, seconds=LOAD_SECONDS, workers=2)).start()
    time.sleep(LOAD_SECONDS / 3)       # let the load start: the change must land under it
    outcome = action()
    return outcome, run.wait()


@pytest.mark.parametrize("tls,keepalive", MODES, ids=[f"tls{v}-{'keepalive' if k else 'close'}" for v, k in MODES])
def test_certificate_swap_under_load_fails_no_request(site, tls, keepalive):
    before = site.served_serial_now()
    new_serial, result = _during_load(site, site.swap_certificate, tls, keepalive)

    assert result.failed == 0, result.summary()
    assert result.ok > 50, result.summary()          # the load really ran across the swap
    assert new_serial != before
    served = [x509.load_der_x509_certificate(der).serial_number for der in result.server_certs]
    assert served[0] == before and served[-1] == new_serial, served    # old, then new, under the load
    assert wait_for(lambda: site.served_serial_now() == new_serial), "the new certificate is not served"


def test_renewal_installed_under_load_fails_no_request(site):
    """`mtlskit renew` of the server certificate, installed into the deployment by the renewal."""
    new_serial, result = _during_load(site, site.renew_certificate)
    assert result.failed == 0, result.summary()
    assert wait_for(lambda: site.served_serial_now() == new_serial)


def test_revocation_during_load_fails_no_request(site):
    """A CRL change (`mtlskit revoke` of another client) reaches the server under load."""
    site.mtlskit("issue", "client", "victim", "--out", site.base / "victim")
    _, result = _during_load(site, lambda: site.mtlskit("revoke", "victim"))
    assert result.failed == 0, result.summary()


def test_client_ca_bundle_change_during_load_fails_no_request(site, tmp_path):
    """A client-CA bundle that gains a CA (what an intermediate rotation pushes) under load."""
    other = tmp_path / "other"
    assert main(["--home", str(other), "init", "--no-passphrase", "--name", "Other CA"]) == 0
    bundle = (site.deploy_dir / "client-ca.pem").read_bytes() + (other / "ca" / "intermediate.pem").read_bytes()
    record = next(d for d in list_deployments(_service(site).inventory) if d.directory == site.deploy_dir)

    def push():
        install(site.deploy_dir, [FileSpec("client-ca.pem", bundle)])
        return apply_change(record, {"client-ca.pem"}, lambda: types.SimpleNamespace(ran=False, ok=True))

    applied, result = _during_load(site, push)
    assert applied.ok and applied.status == "updated", applied
    assert result.failed == 0, result.summary()


def test_mismatched_key_is_refused_and_nothing_is_written(site):
    from mtlskit.deploy.renewal import install_credentials
    service = _service(site)
    record = next(d for d in list_deployments(service.inventory) if d.directory == site.deploy_dir)
    before = {name: (site.deploy_dir / name).read_bytes() for name in ("server.pem", "server.pem.key")}
    other_key = (site.base / "loader" / "key.pem").read_bytes()
    with pytest.raises(BadInput, match="not the renewed certificate's"):
        install_credentials(service, record, before["server.pem"], other_key)
    assert {name: (site.deploy_dir / name).read_bytes() for name in before} == before


def _service(site: SwapSite) -> Service:
    return Service.open(load_settings(site.home))


def test_revocations_after_swaps_keep_the_server_up(site):
    """Swap, revoke, swap, revoke: the server still runs and serves the last certificate.
    (HAProxy 2.6.12 with the certificate committed through `set/commit ssl cert` dies on
    the second CRL commit, haproxy#3165: a renewal must not turn a revocation into an outage.)"""
    for round_ in range(2):
        serial = site.swap_certificate()
        site.mtlskit("issue", "client", f"gone-{round_}", "--out", site.base / f"gone-{round_}")
        site.mtlskit("revoke", f"gone-{round_}")
    assert site.process.proc.poll() is None, "the server died"
    assert wait_for(lambda: site.served_serial_now() == serial)
    result = LoadRun(site.load_spec(seconds=0.5, workers=1)).run()
    assert result.failed == 0 and result.ok > 0, result.summary()


def test_agent_renewal_under_load_fails_no_request(site, monkeypatch):
    """`mtlskit agent --once` finds the deployed server certificate due (80 of its 90 days
    gone), renews it where it was issued and installs the successor into the running
    server while the load client runs: zero failed requests, the successor served after."""
    import datetime as dt

    from mtlskit.clock import FixedClock
    from mtlskit.deploy.renewal import install_credentials

    now = dt.datetime.now(dt.timezone.utc)
    issued = site.base / f"aged-{time.monotonic_ns()}"
    with monkeypatch.context() as past:
        past.setattr("mtlskit.cli.common.SystemClock", lambda: FixedClock(now - dt.timedelta(days=80)))
        site.mtlskit("issue", "server", "localhost", "--dns", "localhost", "--ip", "127.0.0.1",
                     "--days", "90", "--out", issued)
    service = _service(site)
    record = next(d for d in list_deployments(service.inventory) if d.directory == site.deploy_dir)
    install_credentials(service, record, (issued / "fullchain.pem").read_bytes(), (issued / "key.pem").read_bytes())
    aged = x509.load_pem_x509_certificate((issued / "cert.pem").read_bytes()).serial_number
    assert wait_for(lambda: site.served_serial_now() == aged)

    _, result = _during_load(site, lambda: site.mtlskit("agent", "--once"))

    assert result.failed == 0, result.summary()
    renewed = x509.load_pem_x509_certificate((issued / "cert.pem").read_bytes()).serial_number
    assert renewed != aged and (issued / "cert.pem.prev").exists()      # renewed where it was issued
    [old] = _service(site).inventory.by_serial(aged)
    assert old.superseded_by == renewed
    assert wait_for(lambda: site.served_serial_now() == renewed), "the agent's renewal is not served"
