"""The SQL of enrollment tokens (table ``enrollment_tokens``, migration 0004_lifecycle).

Only the SHA-256 of a token is stored. A token is used once: :func:`claim` is one
``UPDATE ... WHERE used_at IS NULL AND expires_at > now``, so of many concurrent uses the
database lets exactly one through, whatever process or thread makes them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from mtlskit.store.inventory import _utc, audit_row
from mtlskit.store.models import AuditEvent, EnrollmentToken


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


def _record(row: EnrollmentToken) -> TokenRecord:
    return TokenRecord(row.name, row.profile, json.loads(row.request), _utc(row.created_at),
                       _utc(row.expires_at), _utc(row.used_at), row.used_serial)


def add_token(inventory, token_sha256: str, name: str, profile: str, grant: dict,
              at: dt.datetime, expires_at: dt.datetime) -> None:
    """Store a new token's hash and what it allows, with its audit event."""
    with inventory.transaction() as tx:
        tx.execute(insert(EnrollmentToken).values(
            name=name, token_sha256=token_sha256, profile=profile, request=json.dumps(grant, sort_keys=True),
            created_at=at, expires_at=expires_at))
        tx.execute(insert(AuditEvent), [audit_row("token-create", at, name=name, profile=profile,
                                                  expires_at=expires_at.isoformat())])


def find_token(inventory, token_sha256: str) -> TokenRecord | None:
    with Session(inventory.engine) as session:
        row = session.scalars(select(EnrollmentToken).where(EnrollmentToken.token_sha256 == token_sha256)).first()
        return _record(row) if row else None


def all_tokens(inventory) -> list[TokenRecord]:
    with Session(inventory.engine) as session:
        rows = session.scalars(select(EnrollmentToken).order_by(EnrollmentToken.created_at, EnrollmentToken.id))
        return [_record(row) for row in rows]


def claim(session: Session, token_sha256: str, now: dt.datetime) -> bool:
    """Mark the token used, atomically; False when it is unknown, used or expired."""
    result = session.execute(
        update(EnrollmentToken)
        .where(EnrollmentToken.token_sha256 == token_sha256, EnrollmentToken.used_at.is_(None),
               EnrollmentToken.expires_at > now)
        .values(used_at=now))
    return result.rowcount == 1


def set_used_serial(session: Session, token_sha256: str, serial_hex: str) -> None:
    session.execute(update(EnrollmentToken).where(EnrollmentToken.token_sha256 == token_sha256)
                    .values(used_serial=serial_hex))


def expire_tokens(inventory, name: str, now: dt.datetime) -> int:
    """Revoke the pending tokens of ``name`` (they expire now); how many there were."""
    with inventory.transaction() as tx:
        result = tx.execute(
            update(EnrollmentToken)
            .where(EnrollmentToken.name == name, EnrollmentToken.used_at.is_(None),
                   EnrollmentToken.expires_at > now)
            .values(expires_at=now))
        if result.rowcount:
            tx.execute(insert(AuditEvent), [audit_row("token-revoke", now, name=name, count=result.rowcount)])
        return result.rowcount

