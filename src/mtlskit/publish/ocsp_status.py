"""Certificate status for the OCSP responder, read from the inventory database."""

from __future__ import annotations

import functools

from cryptography import x509

from mtlskit.errors import BadInput, InternalError
from mtlskit.publish.ocsp import CertStatus
from mtlskit.publish.ocsp_source import CertificateState
from mtlskit.revoke.reasons import RevocationReason
from mtlskit.store import status as store
from mtlskit.store.changes import ChangeWatch
from mtlskit.store.dberrors import database_errors

GOOD = CertificateState(CertStatus.GOOD)
UNKNOWN = CertificateState(CertStatus.UNKNOWN)


def _guarded(method):
    """Database errors (locked, unreachable, ...) become InternalError."""
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except database_errors() as exc:
            raise InternalError(f"the inventory cannot be read: {type(exc).__name__}") from exc
    return wrapper


class InventoryStatusLookup:
    """The StatusLookup of a live inventory: one indexed query per uncached serial,
    and ``max(audit_events.id)`` as the change marker (every change writes an event)."""

    def __init__(self, inventory, watch: ChangeWatch | None = None) -> None:
        self._inventory = inventory
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
        with self._inventory.read() as tx:
            row = store.certificate_status(tx, issuer, format(serial, "x"))
        if row is None:
            return UNKNOWN
        status, revoked_at, reason = row
        if status != "revoked":
            return GOOD
        return CertificateState(CertStatus.REVOKED, revoked_at, reason_flag(reason))

    @_guarded
    def change_marker(self) -> int:
        with self._inventory.read() as tx:
            return store.last_event_id(tx)

    @_guarded
    def changed_since(self, marker: int) -> tuple[int, set[tuple[str, int]]]:
        """(new marker, the (issuer, serial) pairs named by events after ``marker``)."""
        changed: set[tuple[str, int]] = set()
        with self._inventory.read() as tx:
            rows = store.events_after(tx, marker)
        for event_id, issuer, serial in rows:
            marker = max(marker, event_id)
            if issuer and serial:
                changed.add((issuer, int(serial, 16)))
        return marker, changed


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
