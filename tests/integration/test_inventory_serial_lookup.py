"""A serial lookup (`show`/`revoke` of serial:HEX, or a NAME that is also hex) seeks the
(issuer, serial) index once per issuer; `WHERE serial = ?` alone read every row."""

from __future__ import annotations

import pytest

from mtlskit.cli.app import main
from mtlskit.clock import SystemClock
from mtlskit.config import load_settings
from mtlskit.service import Service
from mtlskit.store import sql
from tests.support_crl import make_home


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    work = tmp_path_factory.mktemp("serial-lookup")
    home = make_home(work)
    assert main(["--home", str(home), "issue", "client", "ada", "bob", "--out", str(work / "out")]) == 0
    return Service.open(load_settings(home), SystemClock())


def _plans(service, lookup) -> tuple[object, list[str]]:
    """What ``lookup()`` returns, and SQLite's plan of each SELECT it ran."""
    statements = []
    run = sql.Tx.all

    def seen(tx, statement, params=()):
        statements.append((statement, params))
        return run(tx, statement, params)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sql.Tx, "all", seen)
        result = lookup()
    with service.inventory.read() as tx:
        plans = [" | ".join(row[3] for row in run(tx, "EXPLAIN QUERY PLAN " + statement, params))
                 for statement, params in statements if statement.lstrip().upper().startswith(("SELECT", "WITH"))]
    return result, plans


def test_each_issuer_s_serials_are_found(service):
    now = service.clock.now()
    records = service.inventory.query(now)
    assert {r.issuer for r in records} >= {"root", "intermediate"}
    for record in records:
        assert service.inventory.by_serial(record.serial) == [record]
    assert service.inventory.by_serial(1) == []


def test_a_serial_lookup_reads_no_table_from_end_to_end(service):
    leaf = service.inventory.by_name("ada")[0]
    found, plans = _plans(service, lambda: service.inventory.by_serial(leaf.serial))
    assert found == [leaf] and plans
    assert all("SCAN certificates" not in plan for plan in plans), plans
    assert any("(issuer=? AND serial=?)" in plan for plan in plans), plans


def test_locate_by_name_that_is_also_hex_reads_no_table(service):
    _, plans = _plans(service, lambda: service.inventory.locate("bob"))  # not hex: name only
    assert all("SCAN certificates" not in plan for plan in plans)
    _, plans = _plans(service, lambda: service.inventory.find("ada"))   # hex: name and serial
    assert len(plans) == 2 and all("SCAN certificates" not in plan for plan in plans), plans
