"""Renewal planning (mtlskit.lifecycle.plan): due times, jitter, backoff, CRLs; every edge."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from mtlskit.lifecycle import plan

T0 = dt.datetime(2027, 1, 1, tzinfo=dt.timezone.utc)
HOUR, DAY = dt.timedelta(hours=1), dt.timedelta(days=1)
LIFETIMES = [HOUR, DAY, 30 * DAY, 90 * DAY, 365 * DAY, 3652 * DAY]


def serials(count: int, seed: int = 12) -> list[int]:
    rng = random.Random(seed)
    return [rng.getrandbits(127) | 1 for _ in range(count)]


@pytest.mark.parametrize("span", LIFETIMES, ids=lambda s: f"{s.total_seconds():.0f}s")
def test_due_between_two_thirds_and_two_thirds_plus_a_twentieth(span):
    for serial in serials(200):
        due = plan.renew_at(serial, T0, T0 + span)
        assert T0 + span * 2 / 3 <= due < T0 + span * 2 / 3 + span / 20
        assert not plan.is_due(serial, T0, T0 + span, due - dt.timedelta(microseconds=1))
        assert plan.is_due(serial, T0, T0 + span, due)


def test_jitter_is_deterministic_and_depends_on_the_serial():
    span = 90 * DAY
    first = [plan.jitter(s, span) for s in serials(50)]
    assert first == [plan.jitter(s, span) for s in serials(50)]
    assert len(set(first)) == 50


def test_ten_thousand_certificates_of_one_second_spread_over_the_window():
    span = 90 * DAY
    window = span / 20
    offsets = [plan.jitter(s, span) / window for s in serials(10_000)]
    assert min(offsets) < 0.01 and max(offsets) > 0.99
    # ten equal buckets of the window each hold about a tenth (a uniform spread)
    buckets = [0] * 10
    for offset in offsets:
        buckets[int(offset * 10)] += 1
    assert all(850 < count < 1150 for count in buckets), buckets


def test_consecutive_serials_spread_too():
    # serials that differ in their low bits only (a sequential CA) still spread
    offsets = {plan.jitter(1000 + i, 30 * DAY) // dt.timedelta(hours=1) for i in range(200)}
    assert len(offsets) > 30


def test_a_certificate_without_lifetime_is_due_at_once():
    assert plan.renew_at(5, T0, T0) == T0
    assert plan.renew_at(5, T0, T0 - HOUR) == T0          # ends before it starts
    assert plan.is_due(5, T0, T0 - HOUR, T0)


def test_already_expired_is_due():
    assert plan.is_due(77, T0, T0 + DAY, T0 + 2 * DAY)


def test_clock_behind_the_issuer_is_not_due_and_not_expired():
    # issued by a CA whose clock is 5 minutes ahead: not_before is in our future
    now = T0 - dt.timedelta(minutes=5)
    assert not plan.is_due(77, T0, T0 + DAY, now)
    assert not plan.expires_within(T0 + DAY, now, DAY)
    assert plan.renew_at(77, T0, T0 + DAY) > now


def test_backoff_doubles_from_thirty_seconds_to_a_sixtieth_of_the_lifetime():
    span = DAY   # cap: 24 minutes
    delays = [plan.retry_delay(n, span).total_seconds() for n in range(1, 10)]
    assert delays == [30, 60, 120, 240, 480, 960, 1440, 1440, 1440]


@pytest.mark.parametrize("span", LIFETIMES, ids=lambda s: f"{s.total_seconds():.0f}s")
def test_backoff_never_exceeds_the_cap_nor_falls_under_thirty_seconds(span):
    cap = max(span / 60, plan.FIRST_RETRY)
    for failures in (0, 1, 2, 5, 20, 64, 10_000, 10**18):
        delay = plan.retry_delay(failures, span)
        assert plan.FIRST_RETRY <= delay <= cap


def test_one_hour_certificate_is_retried_every_minute_at_most():
    assert plan.retry_delay(50, HOUR) == dt.timedelta(minutes=1)


def test_huge_failure_counts_do_not_overflow():
    retry = plan.next_attempt(10**30, T0, T0 - 3652 * DAY, T0 + 3652 * DAY)
    assert retry.at == T0 + 7304 * DAY / 60 and not retry.at_risk


def test_retry_is_never_planned_past_expiry_and_says_so():
    not_after = T0 + DAY
    failed_at = not_after - dt.timedelta(minutes=10)
    retry = plan.next_attempt(9, failed_at, T0, not_after)   # wants +24 min
    assert retry.at == not_after - plan.LAST_CHANCE and retry.at < not_after
    assert retry.at_risk and not retry.expired


def test_retry_in_the_last_seconds_is_immediate_and_at_risk():
    not_after = T0 + DAY
    failed_at = not_after - dt.timedelta(seconds=2)
    retry = plan.next_attempt(1, failed_at, T0, not_after)
    assert retry.at == failed_at and retry.at_risk


def test_retry_after_expiry_is_none():
    retry = plan.next_attempt(1, T0 + 2 * DAY, T0, T0 + DAY)
    assert retry.expired and retry.at is None and retry.at_risk


def test_retry_well_before_expiry_is_not_at_risk():
    retry = plan.next_attempt(1, T0 + 16 * HOUR, T0, T0 + DAY)
    assert retry.at == T0 + 16 * HOUR + dt.timedelta(seconds=30) and not retry.at_risk


def test_six_hour_outage_of_a_day_certificate_costs_at_most_twenty_attempts():
    # the arithmetic the agent relies on: 30 s doubling to 24 min over 6 hours
    at, failures = T0 + 16 * HOUR, 0
    while at < T0 + 22 * HOUR:
        failures += 1
        at = plan.next_attempt(failures, at, T0, T0 + DAY).at
    assert failures <= 20


def test_expires_within():
    assert plan.expires_within(T0 + DAY, T0, DAY)
    assert not plan.expires_within(T0 + DAY + dt.timedelta(seconds=1), T0, DAY)
    assert plan.expires_within(T0 - HOUR, T0, DAY)           # already expired


def test_crl_due_past_half_its_life():
    this, nxt = T0, T0 + 7 * DAY
    assert plan.crl_refresh_at(this, nxt) == T0 + 3.5 * DAY
    assert not plan.crl_is_due(this, nxt, T0 + 3 * DAY)
    assert plan.crl_is_due(this, nxt, T0 + 3.5 * DAY)
    assert plan.crl_is_due(this, nxt, T0 + 30 * DAY)          # stale
    assert plan.crl_is_due(None, None, T0)                    # never published
    assert plan.crl_is_due(this, this - DAY, T0)              # malformed: due


def test_crl_with_the_clock_behind_its_this_update_is_not_due():
    assert not plan.crl_is_due(T0, T0 + 7 * DAY, T0 - dt.timedelta(minutes=5))


def test_next_wake_is_bounded_both_ways():
    longest = HOUR
    assert plan.next_wake([], T0, longest) == T0 + HOUR
    assert plan.next_wake([T0 + DAY], T0, longest) == T0 + HOUR
    assert plan.next_wake([T0 + dt.timedelta(minutes=3), T0 + DAY], T0, longest) == T0 + dt.timedelta(minutes=3)
    assert plan.next_wake([T0 - DAY], T0, longest) == T0      # overdue: now
