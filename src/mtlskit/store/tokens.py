"""The SQL of enrollment tokens (table ``enrollment_tokens``, migration 0004_lifecycle).

Only the SHA-256 of a token is stored. A token is used once: :func:`claim` is one
``UPDATE ... WHERE used_at IS NULL AND expires_at > now``, so of many concurrent uses the
database lets exactly one through, whatever process or thread makes them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

from mtlskit.store.inventory import audit_row, record_events
from mtlskit.store.sql import Tx, utc

_SELECT_TOKENS = ("SELECT name, profile, request, created_at, expires_at, used_at, used_serial"
                  " FROM enrollment_tokens")


@dataclasses.dataclass(frozen=True)
class TokenRecord:
    """One stored token (never the token itself)."""

    name: str
    profile: str
    grant: dict  # the JSON ``request`` column: SANs and lifetime the token allows
    created_at: dt.datetime
    expires_at: dt.datetime
    used_at: dt.datetime | None
    used_serial: str | None

    def state_at(self, now: dt.datetime) -> str:
        """``used``, ``expired`` (or revoked: expired early) or ``pending``."""
        if self.used_at is not None:
            return "used"
        return "expired" if self.expires_at <= now else "pending"


def _record(row: tuple) -> TokenRecord:
    name, profile, request, created_at, expires_at, used_at, used_serial = row
    return TokenRecord(name, profile, json.loads(request), utc(created_at), utc(expires_at),
                       utc(used_at), used_serial)


def add_token(inventory, token_sha256: str, name: str, profile: str, grant: dict,
              at: dt.datetime, expires_at: dt.datetime) -> None:
    """Store a new token's hash and what it allows, with its audit event."""
    with inventory.transaction() as tx:
        tx.execute("INSERT INTO enrollment_tokens (name, token_sha256, profile, request, created_at, expires_at)"
                   " VALUES (?, ?, ?, ?, ?, ?)",
                   (name, token_sha256, profile, json.dumps(grant, sort_keys=True), at, expires_at))
        record_events(tx, [audit_row("token-create", at, name=name, profile=profile,
                                     expires_at=expires_at.isoformat())])


def find_token(inventory, token_sha256: str) -> TokenRecord | None:
    with inventory.read() as tx:
        row = tx.one(f"{_SELECT_TOKENS} WHERE token_sha256 = ?", (token_sha256,))
    return _record(row) if row else None


def all_tokens(inventory) -> list[TokenRecord]:
    with inventory.read() as tx:
        rows = tx.all(f"{_SELECT_TOKENS} ORDER BY created_at, id")
    return [_record(row) for row in rows]


def claim(session: Tx, token_sha256: str, now: dt.datetime) -> bool:
    """Mark the token used, atomically; False when it is unknown, used or expired."""
    return session.execute("UPDATE enrollment_tokens SET used_at = ?"
                           " WHERE token_sha256 = ? AND used_at IS NULL AND expires_at > ?",
                           (now, token_sha256, now)) == 1


def set_used_serial(session: Tx, token_sha256: str, serial_hex: str) -> None:
    session.execute("UPDATE enrollment_tokens SET used_serial = ? WHERE token_sha256 = ?",
                    (serial_hex, token_sha256))


def expire_tokens(inventory, name: str, now: dt.datetime) -> int:
    """Revoke the pending tokens of ``name`` (they expire now); how many there were."""
    with inventory.transaction() as tx:
        count = tx.execute("UPDATE enrollment_tokens SET expires_at = ?"
                           " WHERE name = ? AND used_at IS NULL AND expires_at > ?", (now, name, now))
        if count:
            record_events(tx, [audit_row("token-revoke", now, name=name, count=count)])
        return count
