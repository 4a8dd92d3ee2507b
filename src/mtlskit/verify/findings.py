"""Findings: what verify and probe report, one object per problem (or success).

A Finding has a stable ``code`` that scripts may match on, a ``level``, a ``message``
in plain words and a ``hint`` saying what to change. Codes never change meaning once
released; new problems get new codes.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Level(str, enum.Enum):
    """How bad a finding is. Only ERROR makes verify/probe exit 1."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True)
class Finding:
    """One result of a check.

    Attributes:
        code: stable identifier, e.g. ``cert-expired`` or ``client-cert-revoked``.
        level: error, warning or info.
        message: one sentence saying what was found.
        hint: what to change, or None when there is nothing to do.
    """

    code: str
    level: Level
    message: str
    hint: str | None = None

    def to_dict(self) -> dict:
        return {"code": self.code, "level": self.level.value,
                "message": self.message, "hint": self.hint}


def error(code: str, message: str, hint: str | None = None) -> Finding:
    return Finding(code, Level.ERROR, message, hint)


def warning(code: str, message: str, hint: str | None = None) -> Finding:
    return Finding(code, Level.WARNING, message, hint)


def info(code: str, message: str, hint: str | None = None) -> Finding:
    return Finding(code, Level.INFO, message, hint)


def has_error(findings: list[Finding]) -> bool:
    return any(f.level is Level.ERROR for f in findings)


def first_error(findings: list[Finding]) -> Finding | None:
    return next((f for f in findings if f.level is Level.ERROR), None)
