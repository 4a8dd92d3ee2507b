"""Refresh every recorded deployment after a CRL change (called by revoke and crl).

For each deployment that checks revocation by CRL: validate the new bundle against the
CAs that deployment trusts, replace its ``crl.pem`` atomically, whether or not its server
runs, then apply it to the running server (``mtlskit.deploy.reload``: a signal to the
live process of its pidfile, HAProxy's admin socket, or the user's command). A server
that is not running gets its files and no reload; that is not a failure. A reload that
fails is reported, and the new CRL stays: a revocation is never rolled back. HAProxy
deployments also get their per-request list of revoked serials (``revoked-serials.lst``),
since HAProxy keeps serving keep-alive connections opened before the new CRL.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

from cryptography import x509

from mtlskit.deploy.bundle import check_crl_coverage, load_crls, pem_bundle, revoked_serials, serial_list_file
from mtlskit.deploy.check import CheckResult
from mtlskit.deploy.install import PUBLIC_MODE, atomic_write
from mtlskit.deploy.records import DeploymentRecord, list_deployments
from mtlskit.deploy import stapling
from mtlskit.deploy.reload import SOCKET_PREFIX, ReloadResult, SocketUpdate, is_running, run_reload
from mtlskit.deploy.render import SYSTEM_PIDFILES, Layout
from mtlskit.errors import MtlskitError

#: statuses that print as a ``warning:`` line
WARNINGS = ("failed", "reload-failed")
#: the files a CRL change rewrites (an admin socket can apply these without a reload)
CRL_FILES = frozenset({"crl.pem", "revoked-serials.lst"})
#: the server certificate and its key: one unit, installed and applied together
SERVER_FILES = frozenset({"server.pem", "server.pem.key"})
#: what HAProxy's admin socket can apply besides the CRL (set/commit ssl cert, ca-file)
SOCKET_FILES = CRL_FILES | SERVER_FILES | {"client-ca.pem"}
#: a HAProxy OCSP staple older than this is fetched again (mtlskit's responses live an hour)
STAPLE_REFRESH_AFTER = dt.timedelta(minutes=20)


@dataclasses.dataclass(frozen=True)
class RefreshResult:
    """What happened to one deployment.

    ``status``: updated (written and applied), not-running (written; no server to
    reload), written (no reload command), reload-failed (written; the reload failed),
    failed (not written), skipped (not a CRL deployment), unchanged (`deploy` wrote the
    same files again: no reload). ``written`` is False only
    when the new CRL could not be written there (the publication stays pending).
    """

    server: str
    name: str
    directory: Path
    status: str
    message: str
    written: bool = True

    @property
    def ok(self) -> bool:
        return self.status not in WARNINGS


def refresh_deployments(service, crl_bundle_pem: bytes) -> list[RefreshResult]:
    """Rewrite each CRL-checking deployment's CRL bundle and apply it to its running server.

    Args:
        service: anything with ``.inventory`` and ``.clock`` (the composition root).
        crl_bundle_pem: the current CRL of every CA, PEM, concatenated.

    Returns:
        one RefreshResult per recorded deployment, in recording order.
    """
    return _each_deployment(service, "deploy-refresh", lambda deployment: _with_staple(
        _refresh_one(deployment, crl_bundle_pem), deployment, service.clock.now()))


def _each_deployment(service, action: str, apply) -> list[RefreshResult]:
    """``apply`` to every recorded deployment, in recording order; one broken deployment
    never stops the others (its result is "failed"). One ``action`` audit event each."""
    results = []
    for deployment in list_deployments(service.inventory):
        try:
            result = apply(deployment)
        except (MtlskitError, OSError) as exc:
            message = exc.message if isinstance(exc, MtlskitError) else f"{exc.strerror or exc}"
            result = RefreshResult(deployment.server, deployment.name, deployment.directory, "failed",
                                   message, written=False)
        results.append(result)
        service.inventory.record_event(action, service.clock.now(), server=deployment.server,
                                       directory=str(deployment.directory), status=result.status,
                                       message=result.message)
    return results


def refresh_staples(service, older_than: dt.timedelta = STAPLE_REFRESH_AFTER) -> list[str]:
    """Fetch a fresh OCSP response for every stapling HAProxy deployment whose ``.ocsp``
    file is older than ``older_than`` (HAProxy, unlike Nginx and Apache, never asks the
    responder itself). Called by `mtlskit serve` on its CRL-refresh pass.

    Returns:
        one line per deployment refreshed or that could not be (the old file stays).
    """
    lines = []
    now = service.clock.now()
    for deployment in list_deployments(service.inventory):
        if not _staples(deployment):
            continue
        staple = stapling.staple_path(Layout(deployment.directory, deployment.server).server_cert)
        try:
            age = now.timestamp() - staple.stat().st_mtime
        except OSError:
            age = None
        if age is None or age >= older_than.total_seconds():
            lines.append(f"{deployment.server} {deployment.directory}: {_staple_line(deployment, now)}")
    return lines


def _staples(deployment: DeploymentRecord) -> bool:
    return deployment.server == "haproxy" and bool(deployment.options.get("staple")) \
        and bool(deployment.options.get("ocsp_url")) and deployment.directory.is_dir()


def _staple_line(deployment: DeploymentRecord, now: dt.datetime) -> str:
    command = deployment.reload_command or ""
    admin_socket = Path(command[len(SOCKET_PREFIX):]) if command.startswith(SOCKET_PREFIX) else None
    try:
        return stapling.refresh_staple(Layout(deployment.directory, deployment.server).server_cert,
                                       deployment.options["ocsp_url"], now, admin_socket)
    except MtlskitError as exc:
        return f"OCSP staple not refreshed: {exc.message}"


def _with_staple(result: RefreshResult, deployment: DeploymentRecord, now: dt.datetime) -> RefreshResult:
    """A CRL refresh of a stapling HAProxy deployment also renews its OCSP staple."""
    if not _staples(deployment):
        return result
    return dataclasses.replace(result, message=f"{result.message}; {_staple_line(deployment, now)}")


def applied(deployment: DeploymentRecord, outcome: ReloadResult) -> RefreshResult:
    """The RefreshResult of files written into ``deployment`` and then ``outcome``."""
    status = "updated" if outcome.running else "not-running"
    if not outcome.ok:
        status = "reload-failed"
    return RefreshResult(deployment.server, deployment.name, deployment.directory, status, outcome.message)


def apply_change(deployment: DeploymentRecord, changed: set[str], config_test) -> RefreshResult:
    """After `deploy` rewrote ``deployment``: reload its running server when a file changed.

    Args:
        changed: the names of the files whose content changed (empty: no reload).
        config_test: () -> CheckResult, run before signalling a running server (Apache
            exits on a graceful restart into a configuration it cannot load).
    """
    def result(status: str, message: str) -> RefreshResult:
        return RefreshResult(deployment.server, deployment.name, deployment.directory, status, message)

    command = deployment.reload_command
    if not changed:
        return result("unchanged", "no file changed; nothing to reload")
    if not command:
        return result("written", "no reload command recorded; restart the server to apply the new files")
    if is_running(command) is not False:
        check = config_test()
        if check.ran and not check.ok:
            return result("reload-failed", f"the configuration test failed: {check.summary}")
    crl = deployment.crl_path.read_bytes() if deployment.crl_path.is_file() else b""
    serial_list = _serial_list(deployment, crl) if crl else None
    return applied(deployment, run_reload(command, deployment.crl_path, crl, serial_list=serial_list,
                                          config_changed=bool(changed - SOCKET_FILES),
                                          socket_update=socket_update(deployment, changed)))


def socket_update(deployment: DeploymentRecord, changed: set[str]) -> SocketUpdate | None:
    """What a running HAProxy must take for ``changed`` beside the CRL (else None): the
    certificate as one combined PEM (chain + key) when either half changed (applied by a
    reload of the master, whose pidfile comes along), the client-CA bundle when it changed."""
    if deployment.server != "haproxy":
        return None
    layout = Layout(deployment.directory, deployment.server)
    certificate = ca_file = None
    if changed & SERVER_FILES:
        certificate = (layout.server_cert, layout.server_cert.read_bytes() + b"\n" + layout.server_key.read_bytes())
    if "client-ca.pem" in changed:
        ca_file = (layout.client_ca, layout.client_ca.read_bytes())
    pidfile = layout.pidfile if deployment.options.get("standalone") else SYSTEM_PIDFILES["haproxy"]
    return SocketUpdate(certificate, ca_file, pidfile)




def _refresh_one(deployment: DeploymentRecord, pem: bytes) -> RefreshResult:
    def result(status: str, message: str, written: bool = True) -> RefreshResult:
        return RefreshResult(deployment.server, deployment.name, deployment.directory, status, message, written)

    if deployment.revocation != "crl":
        return result("skipped", f"revocation is {deployment.revocation}, not crl")
    if not deployment.directory.is_dir():   # nothing left to deliver to
        return result("failed", f"{deployment.directory} no longer exists; deploy again to recreate it")
    try:
        _check_bundle(deployment, pem)
    except MtlskitError as exc:
        return result("failed", exc.message, written=False)
    _write(_new_files(deployment, pem))      # first, and for good: whatever the reload does
    command = deployment.reload_command
    if not command:
        return result("written", "CRL rewritten; no reload command recorded, restart the server to apply it")
    return applied(deployment, run_reload(command, deployment.crl_path, pem,
                                          serial_list=_serial_list(deployment, pem)))


def _serial_list(deployment: DeploymentRecord, pem: bytes) -> tuple[Path, list[str]] | None:
    if deployment.server != "haproxy":
        return None
    return deployment.revoked_serials_path, revoked_serials(load_crls(pem))


def _new_files(deployment: DeploymentRecord, pem: bytes) -> dict[Path, bytes]:
    files = {deployment.crl_path: pem}
    serial_list = _serial_list(deployment, pem)
    if serial_list is not None:
        files[serial_list[0]] = serial_list_file(serial_list[1])
    return files


def _write(files: dict[Path, bytes]) -> None:
    for path, data in files.items():
        atomic_write(path, data, PUBLIC_MODE)


def _check_bundle(deployment: DeploymentRecord, pem: bytes) -> None:
    crls = load_crls(pem)
    if deployment.client_ca_path.exists():
        data = deployment.client_ca_path.read_bytes()
        check_crl_coverage(x509.load_pem_x509_certificates(data), crls)


def refresh_trust(service, ca_certificates: list[x509.Certificate]) -> list[RefreshResult]:
    """After the CA changed (`rotate intermediate`): give every deployment the client-CA
    bundle of ``ca_certificates`` (root first; old and new intermediates both trusted)
    and apply it to its running server (Nginx HUP, Apache graceful, HAProxy ``set/commit
    ssl ca-file``). The CRL bundle was refreshed by the publication that came before.

    Returns:
        one RefreshResult per recorded deployment ("unchanged" when it had these CAs).
    """
    pem = pem_bundle(ca_certificates)
    return _each_deployment(service, "deploy-trust", lambda deployment: _trust_one(deployment, pem))


def _trust_one(deployment: DeploymentRecord, client_ca_pem: bytes) -> RefreshResult:
    if not deployment.directory.is_dir():
        return RefreshResult(deployment.server, deployment.name, deployment.directory, "failed",
                             f"{deployment.directory} no longer exists; deploy again to recreate it", False)
    path = deployment.client_ca_path
    changed = set()
    if not path.is_file() or path.read_bytes() != client_ca_pem:
        atomic_write(path, client_ca_pem, PUBLIC_MODE)
        changed.add(path.name)
    # only the CA file changed, not the configuration: no syntax for a config test to catch
    return apply_change(deployment, changed, lambda: CheckResult(ran=False, ok=True))
