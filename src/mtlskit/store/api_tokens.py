"""The SQL of the REST API's bearer tokens (table ``api_tokens``, migration 0005_service).

Only the SHA-256 of a token is stored. Each request looks its token up here (one indexed
read, no cache): a token revoked or expired is refused on the very next request, by every
worker and every replica.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from mtlskit.errors import AlreadyExists, NotFound
from mtlskit.store.inventory import AUDIT_COLUMNS, audit_values
from mtlskit.store.sql import utc

_COLUMNS = "name, role, created_at, expires_at, revoked_at, last_used_at"
_INSERT_EVENT = f"INSERT INTO audit_events ({', '.join(AUDIT_COLUMNS)}) VALUES (?, ?, ?, ?, ?)"
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)  # last_used_at is written at most this often per token


@dataclasses.dataclass(frozen=True)
class ApiToken:
    """One stored API token (never the token itself)."""

    name: str
    role: str
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None

    def state_at(self, now: dt.datetime) -> str:
        """``active``, ``revoked`` or ``expired``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


def _token(row: tuple) -> ApiToken:
    name, role, created_at, expires_at, revoked_at, last_used_at = row
    return ApiToken(name, role, utc(created_at), utc(expires_at), utc(revoked_at), utc(last_used_at))


def add_api_token(db, name: str, role: str, token_sha256: str, at: dt.datetime,
                  expires_at: dt.datetime | None) -> ApiToken:
    """Store a new token's hash, with its audit event.

    Raises:
        AlreadyExists: a token of that name exists (revoked ones included: names are never reused).
    """
    with db.transaction() as tx:
        if tx.scalar("SELECT 1 FROM api_tokens WHERE name = ?", (name,)) is not None:
            raise AlreadyExists(f"an API token named {name!r} already exists",
                                hint="choose another NAME (`mtlskit token api list` shows them)")
        tx.execute("INSERT INTO api_tokens (name, role, token_sha256, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
                   (name, role, token_sha256, at, expires_at))
        tx.execute(_INSERT_EVENT, audit_values("api-token-create", at, None, None, {
            "name": name, "role": role, "expires_at": expires_at.isoformat() if expires_at else None}))
    return ApiToken(name, role, at, expires_at, None, None)


def list_api_tokens(db) -> list[ApiToken]:
    with db.read() as tx:
        return [_token(row) for row in tx.all(f"SELECT {_COLUMNS} FROM api_tokens ORDER BY name")]


def find_api_token(db, token_sha256: str) -> ApiToken | None:
    """The token with this hash, whatever its state."""
    with db.read() as tx:
        row = tx.one(f"SELECT {_COLUMNS} FROM api_tokens WHERE token_sha256 = ?", (token_sha256,))
    return _token(row) if row else None


def revoke_api_token(db, name: str, at: dt.datetime) -> ApiToken:
    """Mark the token revoked (from the next request on), with its audit event.

    Raises:
        NotFound: no token of that name.
    """
    with db.transaction() as tx:
        row = tx.one(f"SELECT {_COLUMNS} FROM api_tokens WHERE name = ?", (name,))
        if row is None:
            raise NotFound(f"no API token named {name!r}", hint="`mtlskit token api list` shows them")
        token = _token(row)
        if token.revoked_at is not None:
            return token  # revoking twice changes nothing: the first date stands
        tx.execute("UPDATE api_tokens SET revoked_at = ? WHERE name = ?", (at, name))
        tx.execute(_INSERT_EVENT, audit_values("api-token-revoke", at, None, None, {"name": name}))
    return dataclasses.replace(token, revoked_at=at)


def touch_api_token(db, name: str, at: dt.datetime) -> None:
    """Set last_used_at, unless it was set less than LAST_USED_RESOLUTION ago (a write per
    request would serialise every request on the database's write lock)."""
    with db.transaction() as tx:
        tx.execute("UPDATE api_tokens SET last_used_at = ? WHERE name = ? AND "
                   "(last_used_at IS NULL OR last_used_at < ?)", (at, name, at - LAST_USED_RESOLUTION))
