"""The UI's inventory queries (store/browse.py) on a few thousand synthetic rows, held to
brute force over the same rows: keyset pages, NAME prefix (both plans), serial search,
capped counts, the expiry timeline."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from mtlskit.store import browse, certificate_search
from mtlskit.store.certificate_search import PageQuery, certificate_page
from tests.support_ui import UiPki, fill_inventory

COUNT = 3_000


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    pki = UiPki(tmp_path_factory.mktemp("ui-browse"))
    fill_inventory(pki.service, pki.record("alice"), COUNT, chunk=1_000)
    return pki


@pytest.fixture(scope="module")
def everything(pki):
    now = pki.service.clock.now()
    rows = certificate_page(pki.service.inventory.db, now, PageQuery(size=COUNT + 100)).rows
    return now, [record for _, record in rows]


def _walk(db, now, query: PageQuery) -> list:
    seen, after = [], None
    while True:
        page = certificate_page(db, now, dataclasses.replace(query, after=after))
        seen += page.rows
        if not page.has_more:
            return seen
        after = page.rows[-1][0]


def test_all_rows_sorted_by_expiry(pki, everything):
    now, records = everything
    assert len(records) == COUNT + 6   # alice, bob and four OCSP responders
    assert [r.not_after for r in records] == sorted(r.not_after for r in records)


@pytest.mark.parametrize("prefix", ["c0001", "c00", "c"])   # 100, 1,000 and 3,000 matches: both plans
def test_name_prefix_pages_match_brute_force(pki, everything, prefix):
    now, records = everything
    walked = _walk(pki.service.inventory.db, now, PageQuery(search=prefix, status="valid", size=97))
    expected = [r.name for r in records if r.name.startswith(prefix) and r.status_at(now).value == "valid"]
    assert [record.name for _, record in walked] == expected


def test_a_serial_finds_its_certificate_whatever_its_case(pki, everything):
    now, records = everything
    target = records[1234]
    for text in (target.serial_hex, target.serial_hex.upper(), f"serial:{target.serial_hex}"):
        page = certificate_page(pki.service.inventory.db, now, PageQuery(search=text))
        assert [record.serial for _, record in page.rows] == [target.serial] and page.total == 1


def test_counts_stop_at_the_cap(pki, monkeypatch):
    now = pki.service.clock.now()
    monkeypatch.setattr(certificate_search, "COUNT_CAP", 100)
    assert certificate_page(pki.service.inventory.db, now, PageQuery()).total == 101
    assert certificate_page(pki.service.inventory.db, now, PageQuery(search="c00010")).total == 10


def test_timeline_days_match_brute_force(pki, everything):
    now, records = everything
    start = dt.datetime.combine(now.date(), dt.time(), tzinfo=dt.timezone.utc)
    end = start + dt.timedelta(weeks=26)
    expected: dict[dt.date, int] = {}
    for r in records:
        if start <= r.not_after < end and r.status != "revoked":
            expected[r.not_after.date()] = expected.get(r.not_after.date(), 0) + 1
    assert browse.expiry_days(pki.service.inventory.db, start, end) == sorted(expected.items())


def test_revoked_counts_per_issuer(pki, everything):
    _, records = everything
    assert browse.revoked_counts(pki.service.inventory.db) == {
        "intermediate": sum(1 for r in records if r.status == "revoked")}


@pytest.mark.parametrize("days", [7, 30])
def test_expiring_within_days_matches_brute_force(pki, everything, days):
    now, records = everything
    walked = _walk(pki.service.inventory.db, now, PageQuery(expiring_days=days, size=200))
    limit = now + dt.timedelta(days=days)
    expected = [r.serial for r in records if r.status_at(now).value == "valid" and r.not_after <= limit]
    assert [record.serial for _, record in walked] == expected and expected
