"""Renewed server certificates into the deployments that serve them.

`mtlskit renew` (and the agent) call :func:`install_renewed` after the successor's files
are in place: each deployment recorded under the certificate's NAME gets the new key and
chain (key first: the server reads neither until it is reloaded), a HAProxy staple about
the old certificate is replaced or removed (HAProxy refuses to load an answer about another
certificate), and the running server is reloaded through the same entry point as a CRL
change (``refresh.apply_change``). `deploy` run again renews a server certificate with less
than a third of its lifetime left (:func:`due_for_renewal`).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mtlskit.deploy.check import CheckResult
from mtlskit.deploy.install import KEY_MODE, FileSpec, install
from mtlskit.deploy.records import DeploymentRecord, list_deployments
from mtlskit.deploy.refresh import apply_change
from mtlskit.deploy.render import Layout
from mtlskit.deploy import stapling
from mtlskit.errors import BadInput, MtlskitError
from mtlskit.fileio import InputRefused, read_input

SERVER_PROFILES = ("server", "peer")
#: `deploy` renews the server certificate once less than this share of its lifetime is left
RENEW_WHEN_LEFT = 1 / 3


def due_for_renewal(not_before: dt.datetime, not_after: dt.datetime, now: dt.datetime) -> bool:
    """Less than a third of the lifetime left (or none)."""
    return (not_after - now) < (not_after - not_before) * RENEW_WHEN_LEFT


def install_renewed(service, renewals: Sequence) -> list[str]:
    """Install each renewed server certificate into the deployments of its NAME and reload
    their running servers.

    Args:
        renewals: ``mtlskit.lifecycle.renew.Renewal`` (their ``directory`` holds key.pem and
            fullchain.pem of the successor).

    Returns:
        one line per deployment: "<server> <directory>: <what happened>".
    """
    return [line for lines in installed_by_renewal(service, renewals) for line in lines]


def installed_by_renewal(service, renewals: Sequence) -> list[list[str]]:
    """Like :func:`install_renewed`, the lines of each renewal apart (in order)."""
    served = [r.new.name for r in renewals if r.new.profile in SERVER_PROFILES and r.directory]
    if not served:
        return [[] for _ in renewals]
    deployments = [d for d in list_deployments(service.inventory) if d.name in set(served)]
    return [_install_one(service, r, deployments) if r.new.profile in SERVER_PROFILES and r.directory else []
            for r in renewals]


def _install_one(service, renewal, deployments: list[DeploymentRecord]) -> list[str]:
    lines = []
    for deployment in (d for d in deployments if d.name == renewal.new.name):
        try:
            key_pem, chain_pem = _credentials(Path(renewal.directory))
            outcome = install_credentials(service, deployment, chain_pem, key_pem)
        except (MtlskitError, OSError) as exc:   # one broken deployment never stops the others
            outcome = "not installed: " + (exc.message if isinstance(exc, MtlskitError) else str(exc))
        lines.append(f"{deployment.server} {deployment.directory}: {outcome}")
    return lines


def _credentials(directory: Path) -> tuple[bytes, bytes]:
    try:
        return read_input(directory / "key.pem", private=True), read_input(directory / "fullchain.pem")
    except InputRefused as exc:
        raise BadInput(f"cannot read the renewed files in {directory}: {exc}") from None


def install_credentials(service, deployment: DeploymentRecord, chain_pem: bytes, key_pem: bytes) -> str:
    """Write ``key_pem`` and ``chain_pem`` as the deployment's server key and certificate,
    and reload its running server when they changed. Returns what happened, in words.

    Raises:
        BadInput: the key is not the certificate's, or the directory is gone or unwritable.
    """
    _check_pair(chain_pem, key_pem)
    if not deployment.directory.is_dir():
        raise BadInput(f"{deployment.directory} no longer exists; deploy again to recreate it")
    layout = Layout(deployment.directory, deployment.server)
    specs = [FileSpec(layout.server_key.name, key_pem, KEY_MODE), FileSpec(layout.server_cert.name, chain_pem)]
    changed = {spec.name for spec in specs if _differs(deployment.directory / spec.name, spec.data)}
    note = _staple(service, deployment, layout, chain_pem) if changed else None
    install(deployment.directory, specs)
    result = apply_change(deployment, changed, lambda: CheckResult(ran=False, ok=True))
    return f"{result.status}: {result.message}" + (f"; {note}" if note else "")


def _check_pair(chain_pem: bytes, key_pem: bytes) -> None:
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    try:
        leaf = x509.load_pem_x509_certificates(chain_pem)[0]
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise BadInput(f"the renewed key or certificate cannot be read: {exc}") from None
    if key.public_key().public_bytes(*spki) != leaf.public_key().public_bytes(*spki):
        raise BadInput("the renewed key is not the renewed certificate's; nothing installed")


def _differs(path: Path, data: bytes) -> bool:
    try:
        return path.read_bytes() != data
    except OSError:
        return True


def _staple(service, deployment: DeploymentRecord, layout: Layout, chain_pem: bytes) -> str | None:
    """HAProxy's ``server.pem.ocsp`` answers for the old certificate: fetch one for the new
    one, or remove it (HAProxy refuses to load a response about another certificate)."""
    target = stapling.staple_path(layout.server_cert)
    if deployment.server != "haproxy" or not target.exists():
        return None
    ocsp_url = deployment.options.get("ocsp_url")
    try:
        if not ocsp_url:
            raise BadInput("no OCSP URL recorded")
        staple = stapling.fetch_staple(chain_pem, ocsp_url, service.clock.now())
    except BadInput as exc:
        target.unlink(missing_ok=True)
        return f"OCSP staple removed ({exc.message}); deploy again once the responder answers"
    install(deployment.directory, [FileSpec(target.name, staple.der)])
    return "OCSP staple renewed"


def renew_into_deployments(service, authority, old):
    """Renew a server certificate that `deploy` issued (it has no directory of its own): a new
    key in memory, the successor recorded (before the key is written anywhere), then key and
    chain installed into every deployment of its NAME and the running servers reloaded.

    Returns:
        the ``Renewal`` (``directory`` None, ``deployments`` the outcome lines).
    """
    from mtlskit.lifecycle.renew import Renewal, build_successor, record_successors
    from mtlskit.pki.keys import KeyType, generate_private_key, private_key_pem

    now = service.clock.now()
    key = generate_private_key(KeyType(old.key_type))
    new = build_successor(service, authority, old, key.public_key(), at=now)
    record_successors(service, [(old, new)], now)
    chain_pem = new.pem.encode("ascii") + b"".join(
        c.public_bytes(serialization.Encoding.PEM) for c in authority.chain)
    key_pem = private_key_pem(key)
    lines = []
    for deployment in (d for d in list_deployments(service.inventory) if d.name == old.name):
        try:
            outcome = install_credentials(service, deployment, chain_pem, key_pem)
        except (MtlskitError, OSError) as exc:
            outcome = "not installed: " + (exc.message if isinstance(exc, MtlskitError) else str(exc))
        lines.append(f"{deployment.server} {deployment.directory}: {outcome}")
    return Renewal(old, new, None, tuple(lines))
