"""A certificate's status at a time, and the durations `list --expiring` accepts."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from mtlskit.cli.common import MAX_DURATION, parse_duration
from mtlskit.errors import BadInput
from mtlskit.store.inventory import LIVE, CertificateRecord, Status

NOW = dt.datetime(2026, 6, 1, 12, tzinfo=dt.timezone.utc)
DAY = dt.timedelta(days=1)


def _record(not_before, not_after, status="valid") -> CertificateRecord:
    return CertificateRecord("intermediate", 1, "n", "CN=n", (), "client", "ec-p256",
                             not_before, not_after, "00", "", status)


@pytest.mark.parametrize("not_before, not_after, stored, expected", [
    (NOW - DAY, NOW + DAY, "valid", Status.VALID),
    (NOW, NOW + DAY, "valid", Status.VALID),                  # notBefore is inclusive (RFC 5280 4.1.2.5)
    (NOW + dt.timedelta(seconds=1), NOW + DAY, "valid", Status.NOT_YET_VALID),
    (NOW - DAY, NOW, "valid", Status.EXPIRED),
    (NOW + DAY, NOW + 2 * DAY, "revoked", Status.REVOKED),    # revoked wins over everything
    (NOW - 2 * DAY, NOW - DAY, "revoked", Status.REVOKED),
])
def test_status_at(not_before, not_after, stored, expected):
    assert _record(not_before, not_after, stored).status_at(NOW) is expected


def test_live_is_what_revoking_by_name_designates():
    assert LIVE == {Status.VALID, Status.NOT_YET_VALID}
    record = _record(NOW + DAY, NOW + 2 * DAY)
    assert dataclasses.replace(record, status="revoked").status_at(NOW) not in LIVE


@pytest.mark.parametrize("text, seconds", [("0", 0), ("90", 90 * 86400), ("12h", 43200), ("2W", 1209600),
                                           (" 30 d ", 30 * 86400), ("36525d", MAX_DURATION.total_seconds()),
                                           ("0000000000000000001s", 1)])
def test_durations(text, seconds):
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text, why", [("36525d1s", "not a duration"), ("3155760001s", "too long"),
                                        ("5219w", "too long"), ("1" * 13, "too long"), ("9" * 5000, "too long"),
                                        ("", "not a duration"), ("d", "not a duration"), ("²d", "not a duration")])
def test_refused_durations(text, why):
    with pytest.raises(BadInput, match=why):
        parse_duration(text)
