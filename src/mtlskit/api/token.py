"""Bearer tokens of the REST API.

Two kinds, both checked on every request by :func:`authenticate`:

- API tokens (`mtlskit token api create NAME --role ROLE [--ttl]`): ``mtk_`` and 43
  URL-safe characters (32 random bytes), shown once; the inventory keeps only the SHA-256
  (:mod:`mtlskit.store.api_tokens`). A request's token is hashed and looked up by its hash
  (so no comparison runs over the secret itself, and a database lookup by a 256-bit hash
  leaks nothing useful about its preimage); there is no cache: a revoked or expired token is
  refused on the next request by every worker.
- ``HOME/api-token`` (`serve --api`, one random token per home, mode 0600, created on first
  use): kept as it was, an **admin** token named ``api-token`` (audit ``by``:
  ``token:api-token``), compared in constant time. It is revoked by deleting the file and
  restarting serve (a new one is created). ``api-token`` is reserved: no API token takes that name.

The ``Authorization`` field must be exactly ``Bearer <token>`` (RFC 6750 §2.1 as written:
that capitalisation, one space); any other spelling, two ``Authorization`` fields, or a
token anywhere else (query string, body, cookie) is refused with 401. Whoever holds an
admin token may do through the service what the CA key's holder does with the CLI. A token
never appears in an argument list, a log line, a banner or an exception message.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import os
import re
import secrets
from pathlib import Path

from mtlskit.config import ROLES
from mtlskit.errors import BadInput, UsageError
from mtlskit.fileio import PRIVATE, write_new

TOKEN_FILE = "api-token"
FILE_TOKEN_NAME = "api-token"   # the principal of HOME/api-token (admin)
API_TOKEN_PREFIX = "mtk_"       # recognisable in a leaked paste (secret scanners)
MAX_TTL = dt.timedelta(days=3650)
# RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token; we take exactly one space, that spelling.
_BEARER = re.compile(r"Bearer ([A-Za-z0-9._~+/-]+=*)\Z")
_TOKEN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")


def token_path(home: Path) -> Path:
    return Path(home) / TOKEN_FILE


def ensure_token(home: Path) -> Path:
    """Create ``HOME/api-token`` (0600, ``secrets.token_urlsafe(32)``) unless it exists; its path.

    Raises:
        BadInput: the file exists but is readable by group or others, or is empty.
    """
    path = token_path(home)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            write_new(path, (secrets.token_urlsafe(32) + "\n").encode(), PRIVATE)
        except FileExistsError:  # another `serve` created it meanwhile: use theirs
            pass
    load_token(path)  # refuse a bad file at start, not at the first request
    return path


def load_token(path: Path) -> str:
    """The token stored at ``path``.

    Raises:
        BadInput: unreadable, empty, or readable by group or others.
    """
    try:
        mode = os.stat(path).st_mode & 0o777
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read the API token file {path}: {getattr(exc, 'strerror', None) or 'not ASCII'}",
                       hint="delete it and start `mtlskit serve --api` again to create a new one") from None
    if mode & 0o077:
        raise BadInput(f"the API token file {path} is readable by others (mode {mode:04o})",
                       hint=f"chmod 600 {path}, or delete it to create a new token")
    if not text:
        raise BadInput(f"the API token file {path} is empty",
                       hint="delete it and start `mtlskit serve --api` again to create a new one")
    return text


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization`` value spelt exactly ``Bearer <b64token>``, else None."""
    if authorization is None:
        return None
    match = _BEARER.match(authorization)
    return match.group(1) if match else None


def bearer_matches(authorization: str | None, token: str) -> bool:
    """Whether an ``Authorization`` value is ``Bearer <token>`` (compared in constant time)."""
    presented = bearer_token(authorization)
    return presented is not None and hmac.compare_digest(presented.encode(), token.encode())


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def new_api_token() -> str:
    return API_TOKEN_PREFIX + secrets.token_urlsafe(32)


def check_token_name(name: str) -> str:
    """Raises UsageError unless ``name`` is 1-64 of letters, digits, ``.``, ``_``, ``-``
    (first a letter or digit), and not the reserved ``api-token``."""
    if not _TOKEN_NAME.match(name):
        raise UsageError(f"{name[:70]!r} is not a token NAME: 1-64 letters, digits, '.', '_' or '-', "
                         "starting with a letter or digit")
    if name == FILE_TOKEN_NAME:
        raise UsageError(f"{FILE_TOKEN_NAME!r} is reserved for HOME/api-token", hint="choose another NAME")
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise UsageError(f"{role[:40]!r} is not a role", hint=f"roles: {', '.join(ROLES)} (each includes those before it)")
    return role


def create_api_token(service, name: str, role: str, ttl: dt.timedelta | None = None):
    """A new API token: (the token, shown once; its stored ApiToken).

    Raises:
        UsageError: a bad NAME or role, a TTL not above zero or beyond MAX_TTL.
        AlreadyExists: a token of that NAME exists (revoked ones too).
    """
    from mtlskit.store.api_tokens import add_api_token

    check_token_name(name)
    check_role(role)
    if ttl is not None and not dt.timedelta(0) < ttl <= MAX_TTL:
        raise UsageError(f"--ttl must be above zero and at most {MAX_TTL.days} days")
    now = service.clock.now()
    token = new_api_token()
    stored = add_api_token(service.inventory.db, name, role, token_sha256(token), now,
                           now + ttl if ttl is not None else None)
    return token, stored


def authenticate(authorizations: list[str], db, file_token: str | None, now: dt.datetime):
    """The Principal of a request's ``Authorization`` field values.

    Raises:
        Unauthenticated: none, several, not ``Bearer <token>``, or a token that is unknown,
            revoked or expired (the message says which, never the token).
    """
    from mtlskit.api.auth import Principal, Unauthenticated
    from mtlskit.store.api_tokens import LAST_USED_RESOLUTION, find_api_token, touch_api_token

    if not authorizations:
        raise Unauthenticated("a bearer token is required", hint=_HINT)
    if len(authorizations) > 1:
        raise Unauthenticated("one bearer token is required: send one Authorization field, not several",
                              hint=_HINT)
    presented = bearer_token(authorizations[0])
    if presented is None:
        raise Unauthenticated("a bearer token is required: the Authorization field must read "
                              "'Bearer <token>'", hint=_HINT)
    if file_token is not None and hmac.compare_digest(presented.encode(), file_token.encode()):
        return Principal(FILE_TOKEN_NAME, "admin", "token")
    stored = find_api_token(db, token_sha256(presented))
    if stored is None:
        raise Unauthenticated("the bearer token is not valid", hint=_HINT)
    state = stored.state_at(now)
    if state != "active":
        raise Unauthenticated(f"the bearer token {stored.name!r} is {state}", hint=_HINT)
    if stored.last_used_at is None or now - stored.last_used_at >= LAST_USED_RESOLUTION:
        try:
            touch_api_token(db, stored.name, now)
        except Exception:  # bookkeeping: a busy or read-only database must not refuse a valid token
            logging.getLogger("mtlskit.serve").warning("could not record the use of API token %s", stored.name,
                                                       exc_info=True)
    return Principal(stored.name, stored.role, "token")


_HINT = "send 'Authorization: Bearer <token>' with a token of `mtlskit token api create`"
