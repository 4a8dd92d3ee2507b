"""Renewal planning, pure: when a certificate is due, when to try again after a failure,
when a CRL needs signing again. No files, no database, no clock: every function takes
the times it needs.

- A certificate is due once 2/3 of its lifetime has passed (step-ca's rule), plus a
  jitter in [0, lifetime/20) derived from its serial number: certificates issued in the
  same second spread over a window of 1/20 of their lifetime, and running the plan again
  gives the same answer (no random state to keep).
- After a failure the next attempt comes 30 s later, then 60 s, 120 s, ... (doubling),
  never more than lifetime/60 apart (so a 24 h certificate is tried at least every 24
  minutes), and never after the certificate expires: the last attempt is put just before
  expiry and the plan says the certificate is at risk.
- A CRL is signed again once half of its lifetime (thisUpdate to nextUpdate) has passed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib

RENEW_AFTER = 2 / 3
JITTER_SHARE = 20            # jitter < lifetime / 20
FIRST_RETRY = dt.timedelta(seconds=30)
RETRY_CAP_SHARE = 60         # retries at most lifetime / 60 apart
#: an attempt is never planned closer to expiry than this (the signing itself takes time)
LAST_CHANCE = dt.timedelta(seconds=5)
_DOUBLINGS = 40              # 30 s * 2**40 is 1,000 years: no certificate lives that long


def lifetime(not_before: dt.datetime, not_after: dt.datetime) -> dt.timedelta:
    """The validity period; never negative (a certificate that ends before it starts
    has no lifetime, and is due at once)."""
    return max(not_after - not_before, dt.timedelta(0))


def jitter(serial: int, span: dt.timedelta) -> dt.timedelta:
    """A delay in [0, span/20), the same for the same serial every time.

    The serial (random, 64 bits or more) is hashed so that serials sharing their low bits
    still spread evenly; microsecond resolution.
    """
    window = int(span / dt.timedelta(microseconds=1)) // JITTER_SHARE
    if window <= 0:
        return dt.timedelta(0)
    digest = hashlib.sha256(serial.to_bytes((serial.bit_length() + 8) // 8, "big", signed=True)).digest()
    return dt.timedelta(microseconds=int.from_bytes(digest[:8], "big") % window)


def renew_at(serial: int, not_before: dt.datetime, not_after: dt.datetime) -> dt.datetime:
    """When a certificate becomes due: 2/3 of its lifetime, plus its jitter."""
    span = lifetime(not_before, not_after)
    return not_before + span * RENEW_AFTER + jitter(serial, span)


def is_due(serial: int, not_before: dt.datetime, not_after: dt.datetime, now: dt.datetime) -> bool:
    """Whether a certificate should be renewed at ``now`` (an expired one is due too)."""
    return now >= renew_at(serial, not_before, not_after)


def retry_delay(failures: int, span: dt.timedelta) -> dt.timedelta:
    """How long to wait after the ``failures``-th failure in a row (1 -> 30 s, 2 -> 60 s,
    ...), at most ``span``/60 (and never less than 30 s)."""
    doublings = min(max(failures, 1) - 1, _DOUBLINGS)
    cap = max(span / RETRY_CAP_SHARE, FIRST_RETRY)
    return min(FIRST_RETRY * (2 ** doublings), cap)


@dataclasses.dataclass(frozen=True)
class Retry:
    """The next attempt after a failure.

    ``at``: when to try again (None: the certificate has expired, no attempt can save
    it). ``at_risk``: the backoff wanted a later attempt than expiry allows (it was
    moved to just before expiry), or the certificate has expired.
    """

    at: dt.datetime | None
    at_risk: bool

    @property
    def expired(self) -> bool:
        return self.at is None


def next_attempt(failures: int, failed_at: dt.datetime, not_before: dt.datetime,
                 not_after: dt.datetime) -> Retry:
    """When to try again after ``failures`` failures in a row, the last at ``failed_at``."""
    if failed_at >= not_after:
        return Retry(None, True)
    wanted = failed_at + retry_delay(failures, lifetime(not_before, not_after))
    latest = not_after - LAST_CHANCE
    if wanted <= latest:
        return Retry(wanted, False)
    # as late as expiry allows, but not before now: a certificate in its last seconds is
    # tried at once, and said to be at risk
    return Retry(max(latest, failed_at), True)


def expires_within(not_after: dt.datetime, now: dt.datetime, window: dt.timedelta) -> bool:
    """Whether a certificate is expired or expires within ``window`` of ``now``."""
    return not_after - now <= window


def crl_refresh_at(this_update: dt.datetime, next_update: dt.datetime) -> dt.datetime:
    """When a CRL should be signed again: half way through its life."""
    return this_update + lifetime(this_update, next_update) / 2


def crl_is_due(this_update: dt.datetime | None, next_update: dt.datetime | None,
               now: dt.datetime) -> bool:
    """Whether a CRL needs signing at ``now``: missing, past half its life, or stale."""
    if this_update is None or next_update is None:
        return True
    return now >= crl_refresh_at(this_update, next_update)


def next_wake(candidates, now: dt.datetime, longest: dt.timedelta) -> dt.datetime:
    """The earliest of ``candidates`` (times something is due), but not before ``now``
    and not later than ``now + longest`` (a sleeping agent looks again at least that often)."""
    return max(now, min([now + longest, *candidates]))
