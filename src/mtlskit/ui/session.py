"""Log-in links, sessions and CSRF tokens of the web UI.

Log-in (as Jupyter does): `serve --ui` prints a URL carrying a random token; opening it
once turns it into a session cookie and redirects to a URL without it. Only the token's
SHA-256 is kept, as the name of a file in ``HOME/ui/login/`` (mode 0700): using it is an
``unlink``, which exactly one process succeeds at, so the link works once whatever the
number of workers. On `serve --tls-port`, a client certificate with a role in ``[roles]``
logs in directly (:func:`mtlskit.api.auth.verified_principal`).

Sessions are cookies signed (HMAC-SHA256) with a key drawn at each start of `serve` and
shared by its workers through fork: a cookie of another `serve`, or of this one before a
restart, is refused. A cookie carries the session id, the user, the role and an absolute
expiry; log-out records the id in ``HOME/ui/ended/`` (checked on every request). The CSRF
token of a session is an HMAC of its id: per session, never in a URL, compared in constant
time.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import os
import re
import secrets
from pathlib import Path

from mtlskit.api.auth import Principal
from mtlskit.errors import BadInput

COOKIE = "mtlskit_ui"
LOGIN_LINK_SECONDS = 24 * 3600   # an unused log-in link stops working after a day
_TOKEN = re.compile(r"[A-Za-z0-9_-]{20,100}\Z")
_SID = re.compile(r"[A-Za-z0-9_-]{16,64}\Z")


@dataclasses.dataclass(frozen=True)
class Session:
    sid: str
    name: str
    role: str
    via: str          # how the session was opened: "link" or "certificate"
    expires: int      # POSIX seconds

    @property
    def principal(self) -> Principal:
        """Who acts: audited as ``session:<name>``."""
        return Principal(self.name, self.role, "session")


class LoginLinks:
    """One-time log-in tokens, stored as files named by their SHA-256 (never the token)."""

    def __init__(self, state_dir: Path) -> None:
        self.directory = Path(state_dir) / "login"

    def create(self) -> str:
        """A new token (``secrets.token_urlsafe(32)``), usable once."""
        _private_dir(self.directory)
        token = secrets.token_urlsafe(32)
        fd = os.open(self.directory / _digest(token), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        return token

    def consume(self, token: str, now: float) -> bool:
        """Whether ``token`` is a link not used yet (and not older than a day); uses it up."""
        if not _TOKEN.match(token or ""):
            return False
        path = self.directory / _digest(token)
        try:
            created = path.stat().st_mtime
            os.unlink(path)   # atomic: one request, in one worker, wins
        except FileNotFoundError:
            return False
        return now - created <= LOGIN_LINK_SECONDS


class Sessions:
    """Signed session cookies and their CSRF tokens (the key lives as long as `serve`)."""

    def __init__(self, key: bytes, state_dir: Path, lifetime_seconds: int) -> None:
        if len(key) < 32:
            raise BadInput("the session key must have at least 32 bytes")
        self._secret = key
        self.ended_dir = Path(state_dir) / "ended"
        self.lifetime = lifetime_seconds
        _private_dir(self.ended_dir)

    def open(self, name: str, role: str, via: str, now: float) -> tuple[str, Session]:
        """A new session and its cookie value."""
        session = Session(secrets.token_urlsafe(18), name, role, via, int(now) + self.lifetime)
        payload = _b64(json.dumps(dataclasses.asdict(session), separators=(",", ":")).encode())
        return f"{payload}.{self._sign(payload)}", session

    def read(self, cookie: str | None, now: float) -> Session | None:
        """The session of a cookie value, or None: unsigned, forged, expired or ended."""
        if not cookie or cookie.count(".") != 1 or len(cookie) > 4096:
            return None
        payload, signature = cookie.split(".")
        if not hmac.compare_digest(signature.encode(), self._sign(payload).encode()):
            return None
        try:
            session = Session(**json.loads(_unb64(payload)))
        except (ValueError, TypeError):
            return None
        if session.expires <= now or not _SID.match(session.sid) or (self.ended_dir / session.sid).exists():
            return None
        return session

    def end(self, session: Session) -> None:
        """Log-out: the session's cookie is refused from now on, by every worker."""
        (self.ended_dir / session.sid).touch(mode=0o600)

    def csrf_token(self, session: Session) -> str:
        return self._sign("csrf:" + session.sid)

    def csrf_ok(self, session: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(token.encode(), self.csrf_token(session).encode())

    def _sign(self, text: str) -> str:
        return _b64(hmac.new(self._secret, text.encode(), hashlib.sha256).digest())


def new_key() -> bytes:
    return secrets.token_bytes(32)


def forget_ended(state_dir: Path, now: float, lifetime_seconds: int) -> None:
    """Remove log-out records older than any session could be (at `serve` start)."""
    directory = Path(state_dir) / "ended"
    if not directory.is_dir():
        return
    for entry in os.scandir(directory):
        try:
            if now - entry.stat().st_mtime > lifetime_seconds:
                os.unlink(entry.path)
        except FileNotFoundError:
            pass


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    os.chmod(path.parent, 0o700)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

