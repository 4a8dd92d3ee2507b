"""The bearer token of the REST API (``mtlskit serve --api``).

One random token per home, in ``HOME/api-token`` (mode 0600, created on first use).
Whoever can read that file may revoke certificates through the running service, exactly
as whoever can read the CA key may revoke them with the CLI. The token never appears in
an argument list, a log line, a banner or an exception message: only its path does.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from mtlskit.errors import BadInput
from mtlskit.fileio import PRIVATE, write_new

TOKEN_FILE = "api-token"


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


def bearer_matches(authorization: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header value carries ``token`` (RFC 6750 §2.1),
    compared in constant time."""
    if not authorization:
        return False
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(credentials.strip().encode(), token.encode())
