"""The agent's memory of failures: per certificate, how many attempts failed in a row,
when to try next, why the last one failed, and whether the CA itself was out of reach.

Kept in one small JSON file (HOME/agent-state.json for the local agent, beside the
certificate for the remote one), mode 0600, replaced atomically. A certificate that
renews is forgotten; a missing or unreadable file means "no failures known" (the worst
that costs is one early attempt).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

from mtlskit.fileio import PRIVATE, write_atomic

STATE_FILE = "agent-state.json"
MAX_STATE = 16 * 1024 * 1024


@dataclasses.dataclass
class Failure:
    """Failures in a row of one certificate (keyed ``issuer:serial-hex``)."""

    failures: int
    next_attempt: dt.datetime | None
    reason: str
    ca_down: bool = False            # the CA could not be reached (not a refusal)
    saw_down: bool = False           # a later look found it still unreachable
    target: str = ""                 # "NAME serial:HEX", for the log once it is gone
    expires: dt.datetime | None = None

    def to_json(self) -> dict:
        return {"failures": self.failures, "reason": self.reason, "ca_down": self.ca_down,
                "saw_down": self.saw_down, "target": self.target,
                "next_attempt": _text(self.next_attempt), "expires": _text(self.expires)}

    @classmethod
    def from_json(cls, data: dict) -> "Failure":
        return cls(int(data["failures"]), _time(data.get("next_attempt")), str(data.get("reason", "")),
                   bool(data.get("ca_down")), bool(data.get("saw_down")), str(data.get("target", "")),
                   _time(data.get("expires")))


def _text(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def _time(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None


def load_state(path: Path) -> dict[str, Failure]:
    """The failures recorded in ``path``; empty when there is no (readable) file."""
    try:
        if path.stat().st_size > MAX_STATE:
            return {}
        raw = json.loads(path.read_text("utf-8"))
        return {str(key): Failure.from_json(value) for key, value in raw.get("failures", {}).items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def save_state(path: Path, failures: dict[str, Failure]) -> None:
    """Replace ``path`` atomically (0600) with ``failures``."""
    data = {"version": 1, "failures": {key: value.to_json() for key, value in sorted(failures.items())}}
    write_atomic(path, (json.dumps(data, indent=1) + "\n").encode(), PRIVATE)
