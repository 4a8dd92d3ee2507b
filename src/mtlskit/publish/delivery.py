"""Publishing committed CRLs: HOME/crl/ files, every deployment, then "published".

The database is the source of truth: a CRL is signed and stored with the revocation that
made it, in one transaction. What follows the commit is delivery, and it may fail (a
read-only disk, a deployment directory gone). A CRL is marked published only when its
files are in HOME/crl/ AND in every deployment; until then it is *pending*, and the next
`revoke`, `crl` or `serve` start publishes it again. A failed delivery never undoes the
revocation, and a failed reload never puts an older CRL back.
"""

from __future__ import annotations

import dataclasses

from mtlskit.errors import MtlskitError, NotFound
from mtlskit.publish.crl_files import CrlExport, crl_bundle_pem, staged_export
from mtlskit.store.publication import mark_published, pending_crls


@dataclasses.dataclass(frozen=True)
class Delivery:
    """What one delivery did.

    Attributes:
        bundle: the PEM bundle handed to the deployments (None while a CA has no CRL).
        deployments: per-deployment results of the refresh (None: nothing deployed).
        error: why HOME/crl/ did not get the files (None when it did); the CRL stays pending.
    """

    bundle: bytes | None
    deployments: list | None
    error: str | None = None

    @property
    def complete(self) -> bool:
        return self.error is None and all(d.written for d in self.deployments or [])


def deliver(service, export: CrlExport, refresh) -> Delivery:
    """After the commit: put ``export``'s staged files in place, refresh every deployment
    (even when HOME/crl/ could not be written), and mark the CRLs published when both did.

    ``refresh(service, bundle)`` is the deployment hook (``crls.refresh_deployments``).
    """
    error = None
    try:
        bundle = export.publish()
    except (OSError, MtlskitError) as exc:
        error = f"cannot write the CRL files in {export.crl_dir}: {_reason(exc)}"
        bundle = _stored_bundle(service)
    deployments = refresh(service, bundle) if bundle is not None else None
    delivery = Delivery(bundle, deployments, error)
    if delivery.complete and export.published:
        mark_published(service.inventory, export.published)
    return delivery


def publish_pending(service, refresh) -> tuple[list[str], Delivery | None]:
    """Deliver the stored CRLs that were committed but never published (no signing).

    Returns:
        the CA names that were pending, and the delivery (None when nothing was).
    """
    pending = pending_crls(service.inventory)
    if not pending:
        return [], None
    with staged_export(service) as export:
        export.stage(pending)
        return sorted(pending), deliver(service, export, refresh)


def _stored_bundle(service) -> bytes | None:
    try:
        return crl_bundle_pem(service)
    except NotFound:
        return None


def _reason(exc: Exception) -> str:
    if isinstance(exc, MtlskitError):
        return exc.message
    return exc.strerror or str(exc) if isinstance(exc, OSError) else str(exc)
