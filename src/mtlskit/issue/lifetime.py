"""Lifetimes asked for in days or in hours: one rule for `issue`, `sign` and `token create`."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from mtlskit.errors import BadInput, PolicyViolation, UsageError

if TYPE_CHECKING:   # `list` imports this module: no cryptography import here
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
    if days is None and hours is None:
        return profile.default_lifetime
    option, count, unit = ("--hours", hours, HOUR) if hours is not None else ("--days", days, DAY)
    if count < 1:
        raise BadInput(f"{option} {count} refused: at least 1 {unit_name(unit)} is required")
    if count > profile.max_lifetime // unit:   # compared as numbers: a huge count is no timedelta
        raise PolicyViolation(f"lifetime of {count} {unit_name(unit)}s refused: the {profile.name} profile "
                              f"allows at most {describe(profile.max_lifetime)}",
                              hint=f"ask for {option} {profile.max_lifetime // unit} or less")
    return count * unit


def check_profile_maximum(profile: Profile, lifetime: dt.timedelta, option: str = "--days") -> None:
    if lifetime > profile.max_lifetime:
        raise PolicyViolation(f"lifetime of {describe(lifetime)} refused: the {profile.name} profile allows "
                              f"at most {describe(profile.max_lifetime)}",
                              hint=f"ask for {option} {_in_unit(profile.max_lifetime, option)} or less")


def unit_name(unit: dt.timedelta) -> str:
    return "hour" if unit == HOUR else "day"


def describe(lifetime: dt.timedelta) -> str:
    """`90 days`, `1 day`, `36 hours`, `1 hour`."""
    if lifetime % DAY == dt.timedelta(0):
        count, unit = lifetime // DAY, "day"
    else:
        count, unit = lifetime // HOUR, "hour"
    return f"{count} {unit}{'' if count == 1 else 's'}"


def _in_unit(lifetime: dt.timedelta, option: str) -> int:
    return lifetime // (HOUR if option == "--hours" else DAY)


SHORT_LIVED = 3 * DAY   # validity (notBefore to notAfter) under this: time left counted in hours


def is_short_lived(not_before: dt.datetime, not_after: dt.datetime) -> bool:
    """Valid for less than 3 days (`--hours`, or `--days 1` and 2): `list` shows hours left."""
    return not_after - not_before < SHORT_LIVED


def hours_left(not_after: dt.datetime, now: dt.datetime) -> int:
    """Whole hours until ``not_after`` (negative once past), as ``days_left`` counts days."""
    return (not_after - now) // HOUR


def time_left(not_before: dt.datetime, not_after: dt.datetime, now: dt.datetime) -> str:
    """The DAYS column of `list`: whole days, or ``11h`` for a short-lived certificate."""
    if is_short_lived(not_before, not_after):
        return f"{hours_left(not_after, now)}h"
    return str((not_after - now).days)


# Profiles of the certificates mtlskit renews itself: the OCSP responder certificates that
# `serve` certifies and renews (publish/responder.py). `list --expiring` leaves them out.
MANAGED_PROFILES = frozenset({"ocsp", "serve-tls"})  # serve-tls: api/tls.py


def is_managed(profile: str) -> bool:
    return profile in MANAGED_PROFILES
