"""Certificate status for the OCSP responder, read from the inventory database."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from sqlalchemy import Engine, func, select

from mtlskit.publish.ocsp import CertStatus
from mtlskit.publish.ocsp_source import CertificateState
from mtlskit.store.models import AuditEvent, CertificateRow

GOOD = CertificateState(CertStatus.GOOD)
UNKNOWN = CertificateState(CertStatus.UNKNOWN)


class InventoryStatusLookup:
    """The StatusLookup of a live inventory: one indexed query per uncached serial,
    and ``max(audit_events.id)`` as the change marker (every change writes an event)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def state(self, issuer: str, serial: int) -> CertificateState:
        """good, revoked (time, reason) or unknown for a serial this CA never issued."""
        if serial < 0:
            return UNKNOWN
        stmt = select(CertificateRow.status, CertificateRow.revoked_at, CertificateRow.revocation_reason) \
            .where(CertificateRow.issuer == issuer, CertificateRow.serial == format(serial, "x"))
        with self._engine.connect() as connection:
            row = connection.execute(stmt).first()
        if row is None:
            return UNKNOWN
        if row.status != "revoked":
            return GOOD
        return CertificateState(CertStatus.REVOKED, _utc(row.revoked_at), reason_flag(row.revocation_reason))

    def change_marker(self) -> int:
        with self._engine.connect() as connection:
            return connection.execute(select(func.max(AuditEvent.id))).scalar() or 0

    def changed_since(self, marker: int) -> tuple[int, set[tuple[str, int]]]:
        """(new marker, the (issuer, serial) pairs named by events after ``marker``)."""
        stmt = select(AuditEvent.id, AuditEvent.issuer, AuditEvent.serial).where(AuditEvent.id > marker)
        changed: set[tuple[str, int]] = set()
        with self._engine.connect() as connection:
            for event_id, issuer, serial in connection.execute(stmt):
                marker = max(marker, event_id)
                if issuer and serial:
                    changed.add((issuer, int(serial, 16)))
        return marker, changed


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.timezone.utc)


def reason_flag(text: str | None) -> x509.ReasonFlags | None:
    """The RFC 5280 §5.3.1 reason of a stored reason name (keyCompromise, key_compromise,
    key-compromise...). ``unspecified`` and unknown names give None: the reason is then
    left out, as RFC 5280 §5.3.1 asks for unspecified."""
    if not text:
        return None
    wanted = text.replace("_", "").replace("-", "").replace(" ", "").lower()
    for flag in x509.ReasonFlags:
        if flag.name.replace("_", "").lower() == wanted and flag is not x509.ReasonFlags.unspecified:
            return flag
    return None
