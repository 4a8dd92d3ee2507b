"""Refresh every recorded deployment after a CRL change (called by revoke and crl).

For each deployment that checks revocation by CRL: validate the new bundle against
the CAs that deployment trusts, replace its ``crl.pem`` atomically, and apply it with
the deployment's reload command. A failed reload puts the previous file back and is
reported; it never stops the other deployments from being refreshed. HAProxy
deployments also get their per-request list of revoked serials (``revoked-serials.lst``),
since HAProxy keeps serving keep-alive connections opened before the new CRL.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from cryptography import x509

from mtlskit.deploy.bundle import check_crl_coverage, load_crls, revoked_serials, serial_list_file
from mtlskit.deploy.install import PUBLIC_MODE, atomic_write
from mtlskit.deploy.records import DeploymentRecord, list_deployments
from mtlskit.deploy.reload import SOCKET_PREFIX, run_reload
from mtlskit.errors import MtlskitError


@dataclasses.dataclass(frozen=True)
class RefreshResult:
    """What happened to one deployment: ``status`` is updated, failed or skipped."""

    server: str
    name: str
    directory: Path
    status: str
    message: str

    @property
    def ok(self) -> bool:
        return self.status != "failed"


def refresh_deployments(service, crl_bundle_pem: bytes) -> list[RefreshResult]:
    """Rewrite each CRL-checking deployment's CRL bundle and run its reload command.

    Args:
        service: anything with ``.inventory`` and ``.clock`` (the composition root).
        crl_bundle_pem: the current CRL of every CA, PEM, concatenated.

    Returns:
        one RefreshResult per recorded deployment, in recording order.
    """
    results = []
    for deployment in list_deployments(service.inventory):
        try:
            result = _refresh_one(deployment, crl_bundle_pem)
        except (MtlskitError, OSError) as exc:   # one broken deployment never stops the others
            message = exc.message if isinstance(exc, MtlskitError) else f"{exc.strerror or exc}"
            result = RefreshResult(deployment.server, deployment.name, deployment.directory, "failed", message)
        results.append(result)
        service.inventory.record_event("deploy-refresh", service.clock.now(), server=deployment.server,
                                       directory=str(deployment.directory), status=result.status,
                                       message=result.message)
    return results


def _refresh_one(deployment: DeploymentRecord, pem: bytes) -> RefreshResult:
    def result(status: str, message: str) -> RefreshResult:
        return RefreshResult(deployment.server, deployment.name, deployment.directory, status, message)

    if deployment.revocation != "crl":
        return result("skipped", f"revocation is {deployment.revocation}, not crl")
    if not deployment.directory.is_dir():
        return result("failed", f"{deployment.directory} no longer exists; deploy again to recreate it")
    try:
        _check_bundle(deployment, pem)
    except MtlskitError as exc:
        return result("failed", exc.message)
    files = _new_files(deployment, pem)
    previous = {path: path.read_bytes() for path in files if path.exists()}
    command = deployment.reload_command
    serial_list = _serial_list(deployment, pem)
    if command and command.startswith(SOCKET_PREFIX):
        # HAProxy: push through the socket first; the files follow only on success, so a
        # later restart loads what the running process already uses.
        outcome = run_reload(command, deployment.crl_path, pem, serial_list=serial_list)
        if outcome.ok:
            _write(files)
            return result("updated", outcome.message)
        return result("failed", outcome.message + "; previous CRL kept")
    _write(files)
    if not command:
        return result("updated", "CRL rewritten; no reload command recorded, restart the server to apply it")
    outcome = run_reload(command, deployment.crl_path, pem)
    if outcome.ok:
        return result("updated", outcome.message)
    _write(previous)
    return result("failed", outcome.message + "; previous CRL restored")


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
