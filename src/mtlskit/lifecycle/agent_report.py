"""What an agent pass did: actions (one log line each), alarms, when to wake next."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum

from mtlskit.errors import MtlskitError

#: `--once` fails when something it owns expires within this (or within a quarter of its
#: lifetime, for certificates shorter than four days: a 24 h certificate always has a day)
ALARM = dt.timedelta(days=1)


class Kind(str, enum.Enum):
    """What an action is; its value starts the log line."""

    RENEWED = "renewed"
    DEPLOYED = "deployed"          # a renewed server certificate installed into a deployment
    RETRY = "retry"                # failed; the next attempt is planned
    FAILED = "failed"              # failed; the next attempt is the last before expiry (at risk)
    EXPIRING = "expiring"          # expires within the alarm window
    EXPIRED = "expired"            # expired without a successor
    CRL = "crl"                    # re-signed
    CRL_FAILED = "crl-failed"
    DEPLOYMENTS = "deployments"    # a CRL delivery to deployments, or one that failed


#: actions that make `--once` exit 1
ALARM_KINDS = (Kind.EXPIRING, Kind.EXPIRED)
#: actions printed to stderr by the CLI
WARNING_KINDS = (Kind.FAILED, Kind.EXPIRING, Kind.EXPIRED, Kind.CRL_FAILED)


def alarm_window(span: dt.timedelta) -> dt.timedelta:
    """How close to expiry a certificate makes `--once` fail."""
    return min(ALARM, span / 4)


@dataclasses.dataclass(frozen=True)
class Action:
    """One thing the agent did or found; ``line()`` is its log line."""

    kind: Kind
    target: str               # NAME serial:HEX, or "CRL of <ca>"
    detail: str
    at: dt.datetime | None = None

    def line(self) -> str:
        when = f" at {self.at:%Y-%m-%dT%H:%M:%SZ}" if self.at else ""
        return f"{Kind(self.kind).value}: {self.target}{when}: {self.detail}"

    def to_json(self) -> dict:
        return {"action": Kind(self.kind).value, "target": self.target, "detail": self.detail, "at": self.at}


@dataclasses.dataclass
class Report:
    """What one pass did, and when the next one is needed."""

    actions: list[Action] = dataclasses.field(default_factory=list)
    wake_at: list[dt.datetime] = dataclasses.field(default_factory=list)
    ca_down: bool = False

    @property
    def alarms(self) -> list[Action]:
        return [a for a in self.actions if a.kind in ALARM_KINDS]

    def add(self, action: Action) -> None:
        self.actions.append(action)

    def to_json(self) -> dict:
        return {"actions": [a.to_json() for a in self.actions],
                "renewed": sum(a.kind == Kind.RENEWED for a in self.actions),
                "failed": sum(a.kind in (Kind.RETRY, Kind.FAILED) for a in self.actions),
                "alarms": [a.to_json() for a in self.alarms],
                "next_wake": min(self.wake_at) if self.wake_at else None}




def reason_of(exc: BaseException) -> str:
    """One line saying why ``exc`` happened (no traceback, no secret: messages never hold one)."""
    if isinstance(exc, MtlskitError):
        return exc.message
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__
