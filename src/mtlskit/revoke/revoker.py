"""The revoker: resolve what the user named, revoke it in one transaction, publish.

One call revokes every target at once: the status changes, their audit events, their
encoded CRL entries and the new CRL of each affected issuer are written in ONE database
transaction; then the CRL files are exported and deployed bundles refreshed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Sequence

from cryptography import x509
from mtlskit.errors import AlreadyRevoked, Ambiguous, BadInput, NotFound
from mtlskit.publish import crls
from mtlskit.publish.delivery import Delivery, deliver, publish_pending
from mtlskit.revoke.reasons import RevocationReason
from mtlskit.store.inventory import LIVE, CertificateRecord, Status, describe
from mtlskit.store.publication import pending_crls

#: How far in the future --at may lie: clock skew between hosts, nothing more.
FUTURE_TOLERANCE = dt.timedelta(minutes=5)


@dataclasses.dataclass(frozen=True)
class RevokeResult:
    """What one revocation did.

    Attributes:
        revoked: the certificates revoked, as they now are in the inventory.
        reason, at: the reason and revocation date recorded for each of them.
        crl_ders: the CRLs signed in the same operation (DER), by CA name.
        marker: ``mtlskit.publish.crls.revocation_marker`` after the change.
        deployments: what ``mtlskit.deploy.refresh.refresh_deployments`` returned
            (None while the deploy module is not there).
        republished: certificates named that were already revoked but whose CRL had
            not been published; this call published it.
        error: why the CRL files could not be written to HOME/crl/ (None when they
            were); the revocation is recorded and its CRL stays pending.
    """

    revoked: tuple[CertificateRecord, ...]
    reason: RevocationReason
    at: dt.datetime
    crl_ders: dict[str, bytes]
    marker: int
    deployments: object = None
    republished: tuple[CertificateRecord, ...] = ()
    error: str | None = None

    @property
    def crls(self) -> dict[str, x509.CertificateRevocationList]:
        """The new CRLs as cryptography objects (loaded on demand: a million-entry CRL
        is 50 MB that most callers never need to parse)."""
        return {name: x509.load_der_x509_crl(der) for name, der in self.crl_ders.items()}


def resolve(inventory, target: str, now: dt.datetime) -> list[CertificateRecord]:
    """The certificate(s) one SERIAL|NAME argument designates.

    ``serial:HEX`` and ``name:NAME`` say which one is meant; a bare argument that is
    both a NAME and the serial of a certificate is refused (``Inventory.locate``). A
    NAME designates every one of its certificates that is neither revoked nor expired
    (after a renewal: the successor and the certificates it superseded). A serial (hex, any case, colons optional) designates that
    certificate even when expired.

    Raises:
        BadInput: an empty target, or ``serial:`` with something not hex (exit 2).
        AmbiguousTarget: a bare argument that is a NAME and a serial (exit 2).
        NotFound: nothing of that name or serial (exit 3).
        Ambiguous: a serial of two CAs (exit 4).
        AlreadyRevoked: the certificate designated is already revoked (exit 4).
    """
    found = inventory.locate(target)
    if found.kind == "name":
        return _resolve_name(found.target.shown, list(found.records), now)
    return _resolve_serial(found.target.shown, list(found.records))


def _resolve_name(target: str, by_name: list[CertificateRecord], now: dt.datetime) -> list[CertificateRecord]:
    live = [r for r in by_name if r.status_at(now) in LIVE]  # not yet valid is live too
    if live:  # a renewed NAME has several: its successor and the ones it superseded
        return live
    revoked = [r for r in by_name if r.status == Status.REVOKED.value]
    if len(revoked) == len(by_name):
        raise _already_revoked(revoked)
    raise NotFound(f"{target}: no certificate of this name is still valid "
                   f"({len(revoked)} revoked, {len(by_name) - len(revoked)} expired)",
                   hint="to revoke an expired certificate, give serial:HEX")


def _resolve_serial(target: str, found: list[CertificateRecord]) -> list[CertificateRecord]:
    if len(found) > 1:
        raise Ambiguous(f"{target}: this serial was issued by several CAs: {describe(found)}")
    if found[0].status == Status.REVOKED.value:
        raise _already_revoked(found)
    return found


def _already_revoked(records: Sequence[CertificateRecord]) -> AlreadyRevoked:
    serials = ", ".join(r.serial_hex for r in records)
    verb = "certificate is" if len(records) == 1 else "certificates are"
    error = AlreadyRevoked(f"{serials}: {verb} already revoked.",
                           hint="`mtlskit show serial:HEX` tells when and why")
    error.records = tuple(records)
    return error


def _resolve_all(inventory, targets: Sequence[str], now: dt.datetime, pending: set[str]
                 ) -> tuple[dict[tuple[str, int], CertificateRecord], list[CertificateRecord]]:
    """Resolve every target: (certificates to revoke, already revoked ones whose issuer's
    CRL is still pending, which are published instead of refused).

    Raises:
        see ``resolve``; AlreadyRevoked only for revocations already published.
    """
    records: dict[tuple[str, int], CertificateRecord] = {}
    unpublished: list[CertificateRecord] = []
    for target in targets:
        try:
            found = resolve(inventory, target, now)
        except AlreadyRevoked as exc:
            if not all(r.issuer in pending for r in exc.records):
                raise
            unpublished.extend(exc.records)
            continue
        for record in found:
            records.setdefault((record.issuer, record.serial), record)
    return records, unpublished


def check_revocation_time(at: dt.datetime, now: dt.datetime) -> dt.datetime:
    """``at`` as an aware UTC datetime with whole seconds (CRL times carry no fractions).

    Raises:
        BadInput: ``at`` lies in the future.
    """
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.timezone.utc)
    at = at.astimezone(dt.timezone.utc).replace(microsecond=0)
    if at > now + FUTURE_TOLERANCE:
        raise BadInput(f"--at {at:%Y-%m-%dT%H:%M:%SZ} is in the future",
                       hint="the revocation date is when the certificate stopped being trusted; "
                            "it cannot be later than now")
    return at


def revoke(service, authority, targets: Sequence[str], reason: RevocationReason | str = RevocationReason.UNSPECIFIED,
           at: dt.datetime | None = None) -> RevokeResult:
    """Revoke the certificates designated by ``targets`` (SERIAL or NAME each).

    Every target is resolved before anything changes; one bad target refuses the whole
    batch. Then, in one transaction: the status of each certificate, one "revoke" audit
    event each, their encoded CRL entries, and the next CRL of each affected issuer (plus
    any CA of the chain that has no CRL yet, so the bundle is always complete). After the
    commit the CRL files are exported and deployed bundles refreshed; when that fails the
    CRL stays pending (``result.error`` says why) and the next publication delivers it. A
    target already revoked whose CRL is still pending is published, not refused.

    Args:
        service: the composition root (``inventory``, ``clock``, ``settings``).
        authority: the loaded CA (``signers`` by name) that signs the CRLs.
        targets: SERIAL|NAME arguments.
        reason: a RevocationReason or its CLI word.
        at: the revocation date (default: now); never in the future.

    Raises:
        UsageError/BadInput, NotFound, Ambiguous, AlreadyRevoked: see ``resolve``.
    """
    if isinstance(reason, str) and not isinstance(reason, RevocationReason):
        reason = RevocationReason.parse(reason)
    now = service.clock.now()
    at = check_revocation_time(at if at is not None else now, now)
    if not targets:
        raise BadInput("nothing to revoke", hint="give a SERIAL or NAME, or --from FILE")
    pending = pending_crls(service.inventory)
    records, unpublished = _resolve_all(service.inventory, targets, now, set(pending))
    for record in records.values():
        if record.issuer not in authority.signers:
            raise NotFound(f"{record.serial_hex}: its issuer {record.issuer!r} is not a CA of this home")
    if not records:
        delivery = publish_pending(service, crls.refresh_deployments)[1] or Delivery(None, None)
        return RevokeResult(revoked=(), reason=reason, at=at, crl_ders={}, marker=crls.revocation_marker(service),
                            deployments=delivery.deployments, republished=tuple(unpublished),
                            error=delivery.error)

    stored = crls.published(service)
    with crls.staged_export(service) as export:
        with service.inventory.transaction() as session:
            ders = _record(session, service, authority, list(records.values()), reason, at, now, stored)
            # written while the transaction commits, put in place once it has (with any
            # CRL still pending from an earlier publication that failed)
            export.stage({**{n: d for n, d in pending.items() if n not in ders}, **ders})
        delivery = deliver(service, export, crls.refresh_deployments)
    revoked = tuple(dataclasses.replace(r, status=Status.REVOKED.value, revoked_at=at,
                                        revocation_reason=reason.value) for r in records.values())
    return RevokeResult(revoked=revoked, reason=reason, at=at, crl_ders=ders,
                        marker=crls.revocation_marker(service), deployments=delivery.deployments,
                        republished=tuple(unpublished), error=delivery.error)


def _record(session, service, authority, records: Sequence[CertificateRecord], reason: RevocationReason,
            at: dt.datetime, now: dt.datetime, stored: dict) -> dict[str, bytes]:
    """Inside the transaction: the status changes, audit events and CRL entries of
    ``records``, and the next CRL of each affected issuer (plus any CA of the chain
    without a CRL yet, ``stored`` being those with one). Returns the new CRLs (DER)."""
    already = service.inventory.mark_revoked(session, records, at, reason.value, now)
    if already:  # revoked by another process since we resolved them
        raise _already_revoked(already)
    added: dict[str, list[tuple[int, bytes]]] = {}
    for r in records:
        added.setdefault(r.issuer, []).append((r.serial, crls.entry_for(r.serial, at, reason.value)))
    for issuer, entries in added.items():
        crls.store_entries(session, issuer, entries)
    missing = [name for name in authority.signers if name not in added and name not in stored]
    return {name: crls.regenerate(session, authority.signers[name], now, service.settings.crl_days,
                                  [der for _, der in added.get(name, [])])
            for name in [*sorted(added), *missing]}
