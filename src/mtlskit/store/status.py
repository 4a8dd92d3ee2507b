"""The SQL the OCSP responder runs: one certificate's status, and what changed since a marker."""

from __future__ import annotations

import datetime as dt

from mtlskit.store.sql import Tx, utc


def certificate_status(tx: Tx, issuer: str, serial_hex: str) -> tuple[str, dt.datetime | None, str | None] | None:
    """(status, revoked_at, revocation_reason) of one certificate; None if never issued."""
    row = tx.one("SELECT status, revoked_at, revocation_reason FROM certificates WHERE issuer = ? AND serial = ?",
                 (issuer, serial_hex))
    return None if row is None else (row[0], utc(row[1]), row[2])


def last_event_id(tx: Tx) -> int:
    return tx.scalar("SELECT max(id) FROM audit_events") or 0


def events_after(tx: Tx, marker: int) -> list[tuple[int, str | None, str | None]]:
    """(id, issuer, serial hex) of every audit event after id ``marker``."""
    return tx.all("SELECT id, issuer, serial FROM audit_events WHERE id > ?", (marker,))
