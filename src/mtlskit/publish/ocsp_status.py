"""Certificate status for the OCSP responder, read from the inventory database."""

from __future__ import annotations

import datetime as dt
import functools

from cryptography import x509
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from mtlskit.errors import BadInput, InternalError
from mtlskit.publish.ocsp import CertStatus
from mtlskit.publish.ocsp_source import CertificateState
from mtlskit.revoke.reasons import RevocationReason
from mtlskit.store.changes import ChangeWatch
from mtlskit.store.models import AuditEvent, CertificateRow

GOOD = CertificateState(CertStatus.GOOD)
UNKNOWN = CertificateState(CertStatus.UNKNOWN)


def _guarded(method):
    """SQLAlchemy errors (database locked, unreachable, ...) become InternalError."""
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except SQLAlchemyError as exc:
            raise InternalError(f"the inventory cannot be read: {type(exc).__name__}") from exc
    return wrapper


class InventoryStatusLookup:
    """The StatusLookup of a live inventory: one indexed query per uncached serial,
    and ``max(audit_events.id)`` as the change marker (every change writes an event)."""

    def __init__(self, engine: Engine, watch: ChangeWatch | None = None) -> None:
        self._engine = engine
        self._watch = watch

    def moved(self) -> bool:
        """True when a commit may have happened since the last call (see
        :mod:`mtlskit.store.changes`); without a watch, False: the source's refresh
        interval alone paces the reads of the change marker."""
        return self._watch is not None and self._watch.moved()

    @_guarded
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

    @_guarded
    def change_marker(self) -> int:
        with self._engine.connect() as connection:
            return connection.execute(select(func.max(AuditEvent.id))).scalar() or 0

    @_guarded
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
    """The RFC 5280 §5.3.1 reason of a stored reason word ("key-compromise", or the RFC's
    "keyCompromise"). ``unspecified`` and words this version does not know give None:
    the reason is then left out, as RFC 5280 §5.3.1 asks for unspecified and as the CRL
    does (mtlskit.publish.crls)."""
    if not text:
        return None
    try:
        flag = RevocationReason.parse(text).x509_flag
    except BadInput:
        return None
    return None if flag is x509.ReasonFlags.unspecified else flag
