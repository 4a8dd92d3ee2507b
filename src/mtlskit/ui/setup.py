"""What `serve --ui` prepares once, before forking its workers: the session key (shared by
the workers through fork, never written anywhere), the state directory and the first
one-time log-in link."""

from __future__ import annotations

import dataclasses
import getpass
from pathlib import Path

from mtlskit.errors import BadInput
from mtlskit.ui.session import LoginLinks, Sessions, forget_ended, new_key

STATE_DIR = "ui"
MIN_SESSION_MINUTES, MAX_SESSION_MINUTES = 5, 7 * 24 * 60


@dataclasses.dataclass(frozen=True)
class UiSetup:
    key: bytes = dataclasses.field(repr=False)
    state_dir: Path
    session_seconds: int
    user: str

    @classmethod
    def prepare(cls, settings, now: float) -> "UiSetup":
        """A fresh key for this `serve`, and the state directory cleaned of old log-outs.

        Raises:
            BadInput: ``ui_session_minutes`` out of range.
        """
        minutes = settings.ui_session_minutes
        if not MIN_SESSION_MINUTES <= minutes <= MAX_SESSION_MINUTES:
            raise BadInput(f"setting ui_session_minutes must be between {MIN_SESSION_MINUTES} and "
                           f"{MAX_SESSION_MINUTES}, got {minutes}")
        state_dir = Path(settings.home) / STATE_DIR
        forget_ended(state_dir, now, minutes * 60)
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = "operator"
        return cls(new_key(), state_dir, minutes * 60, user)

    def login_link(self) -> str:
        """A new one-time log-in token (its URL: ``/ui/login?token=...``)."""
        return LoginLinks(self.state_dir).create()

    def context(self, service, authority, source):
        """The UiContext of one worker."""
        from mtlskit.ui.app import UiContext

        return UiContext(service, authority, source, Sessions(self.key, self.state_dir, self.session_seconds),
                         LoginLinks(self.state_dir), self.user)
