"""Lifetimes asked for in days or in hours: one rule for `issue`, `sign` and `token create`."""

from __future__ import annotations

import datetime as dt

from mtlskit.errors import BadInput, PolicyViolation, UsageError
from mtlskit.issue.profiles import Profile

HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)


def requested_lifetime(profile: Profile, days: int | None = None, hours: int | None = None) -> dt.timedelta:
    """The lifetime a request asks for: ``days`` or ``hours`` (never both), else the profile's
    default; at least one hour (one day with ``--days``), at most the profile's maximum.

    Raises:
        UsageError: both given.
        BadInput: fewer than 1 hour (or 1 day).
        PolicyViolation: more than the profile allows.
    """
    if days is not None and hours is not None:
        raise UsageError("--days and --hours cannot be used together")
    if hours is not None:
        if hours < 1:
            raise BadInput(f"--hours {hours} refused: at least 1 hour is required")
        lifetime = dt.timedelta(hours=hours)
    elif days is not None:
        if days < 1:
            raise BadInput(f"--days {days} refused: at least 1 day is required")
        lifetime = dt.timedelta(days=days)
    else:
        return profile.default_lifetime
    check_profile_maximum(profile, lifetime, "--hours" if hours is not None else "--days")
    return lifetime


def check_profile_maximum(profile: Profile, lifetime: dt.timedelta, option: str = "--days") -> None:
    if lifetime > profile.max_lifetime:
        raise PolicyViolation(f"lifetime of {describe(lifetime)} refused: the {profile.name} profile allows "
                              f"at most {describe(profile.max_lifetime)}",
                              hint=f"ask for {option} {_in_unit(profile.max_lifetime, option)} or less")


def describe(lifetime: dt.timedelta) -> str:
    """`90 days`, `1 day`, `36 hours`, `1 hour`."""
    if lifetime % DAY == dt.timedelta(0):
        count, unit = lifetime // DAY, "day"
    else:
        count, unit = lifetime // HOUR, "hour"
    return f"{count} {unit}{'' if count == 1 else 's'}"


def _in_unit(lifetime: dt.timedelta, option: str) -> int:
    return lifetime // (HOUR if option == "--hours" else DAY)


def is_short_lived(lifetime: dt.timedelta) -> bool:
    """Issued for less than 2 days: list, show and JSON count what is left in hours."""
    return lifetime < 2 * DAY
