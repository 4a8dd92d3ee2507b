"""The inventory on plain SQL: the schema revision read without SQLAlchemy, the change
counter moved by every change of a certificate's status, listings without the PEM."""

from __future__ import annotations

import dataclasses
import datetime as dt
import subprocess
import sys

import pytest

from mtlskit.store import db as store_db
from mtlskit.store.inventory import CertificateRecord, Inventory
from mtlskit.store.sql import Database

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)


def _record(serial: int, name: str) -> CertificateRecord:
    return CertificateRecord("intermediate", serial, name, f"CN={name}", ("DNS:x.example",), "client", "ec-p256",
                             NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=20), f"{serial:064x}", "PEM TEXT")


@pytest.fixture
def inventory(tmp_path) -> Inventory:
    return Inventory.open(f"sqlite:///{tmp_path / 'inventory.db'}")


def test_the_revision_is_read_with_plain_sql(tmp_path):
    fresh = Database.open(f"sqlite:///{tmp_path / 'fresh.db'}")
    assert store_db.current_revision(fresh) is None
    store_db.migrate(fresh)
    assert store_db.current_revision(fresh) == store_db.SCHEMA_HEAD
    with fresh.read() as tx:
        assert tx.one("SELECT topic, value FROM change_counters") == ("certificates", 0)


def test_opening_an_up_to_date_inventory_imports_no_sqlalchemy(inventory):
    code = ("import sys; from mtlskit.store.inventory import Inventory; "
            f"Inventory.open({inventory.db.url!r}).count(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'alembic')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_the_change_counter_moves_with_issuance_and_revocation(inventory):
    start = inventory.change_counter()
    alice, bob = _record(1, "alice"), _record(2, "bob")
    inventory.add_certificates([alice, bob], NOW)
    assert inventory.change_counter() == start + 1       # one per transaction, not per row
    with inventory.transaction() as tx:
        assert inventory.mark_revoked(tx, [alice], NOW, "superseded", NOW) == []
    assert inventory.change_counter() == start + 2
    with pytest.raises(RuntimeError), inventory.transaction() as tx:
        inventory.mark_revoked(tx, [bob], NOW, "superseded", NOW)
        raise RuntimeError("rolled back")
    assert inventory.change_counter() == start + 2
    assert inventory.change_counter("no-such-topic") == 0


def test_a_listing_without_pem_is_the_same_records_but_the_pem(inventory):
    records = [_record(serial, f"n{serial}") for serial in range(1, 6)]
    inventory.add_certificates(records, NOW)
    full = inventory.query(NOW, expiring_before=NOW + dt.timedelta(days=30))
    listed = inventory.query(NOW, expiring_before=NOW + dt.timedelta(days=30), pem=False)
    assert full == records and {r.pem for r in listed} == {""}
    assert listed == [dataclasses.replace(r, pem="") for r in full]
