"""store/certificate_search.py: the one query builder behind the REST API's search and the
web UI's certificates page, held to Python's str.startswith on NAMEs that a collation might
order apart from their bytes (punctuation, case, non-ASCII): on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest

from mtlskit.store.certificate_search import Filters, PageQuery, Search, certificate_page, search_certificates
from tests.support_ui import UiPki

NAMES = ("web-1", "web.2", "web_3", "webx", "WEB-4", "web", "we", "web-é", "wéb-5", "web--6", "web-\u00e9t\u00e9")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    pki = UiPki(tmp_path_factory.mktemp("search"))
    for name in NAMES:
        pki.add_hostile(name, ())
    return pki


@pytest.mark.parametrize("prefix", ["web-", "web", "WEB", "wéb", "web-é", "w"])
def test_the_api_and_the_ui_find_exactly_the_names_that_start_with_a_prefix(pki, prefix):
    db, now = pki.service.inventory.db, pki.service.clock.now()
    expected = sorted(n for n in NAMES if n.startswith(prefix))
    api = search_certificates(db, now, Search(Filters(prefix=prefix), limit=50))
    ui = certificate_page(db, now, PageQuery(search=prefix, size=50))
    assert sorted(r.name for r in api.records) == expected and api.total == len(expected)
    assert sorted(r.name for _, r in ui.rows) == expected and ui.total == len(expected)


def test_an_exact_name_is_not_a_prefix(pki):
    db, now = pki.service.inventory.db, pki.service.clock.now()
    assert [r.name for r in search_certificates(db, now, Search(Filters(name="web"))).records] == ["web"]


def test_both_pages_walk_the_same_order(pki):
    db, now = pki.service.inventory.db, pki.service.clock.now()
    api, after = [], None
    while True:
        page = search_certificates(db, now, Search(limit=3, after=after))
        api += [r.serial for r in page.records]
        if page.next_after is None:
            break
        after = page.next_after
    ui, cursor = [], None
    while True:
        page = certificate_page(db, now, PageQuery(size=4, after=cursor))
        ui += [r.serial for _, r in page.rows]
        if not page.has_more:
            break
        cursor = page.rows[-1][0]
    assert api == ui and len(api) == len(set(api)) == len(NAMES) + 6   # alice, bob, four OCSP responders
