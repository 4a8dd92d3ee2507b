"""The inventory side of renewal: superseding many in one statement, refusing (and rolling
back) when another process revoked or renewed one meanwhile, on the SQLite fast path and
on the read-back path other databases take; `renewable` selects what `renew --all` does."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from mtlskit.store.inventory import CertificateRecord, Inventory

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)


def _record(serial: int, name: str, directory: str | None = "/srv/x", days: int = 30, **extra) -> CertificateRecord:
    return CertificateRecord("intermediate", serial, name, f"CN={name}", (), "client", "ec-p256",
                             NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=days), f"{serial:064x}",
                             "PEM", directory=directory, **extra)


@pytest.fixture
def inventory(tmp_path) -> Inventory:
    return Inventory.open(f"sqlite:///{tmp_path / 'inventory.db'}")


@pytest.mark.parametrize("fast", [True, False])
def test_supersede_many_and_refuse_a_stale_one(inventory, monkeypatch, fast):
    if not fast:
        monkeypatch.setattr(Inventory, "_supersede_sqlite", lambda self, session, pairs: False)
    olds = [_record(i, f"n{i}") for i in range(1, 6)]
    news = [_record(100 + i, f"n{i}") for i in range(1, 6)]
    inventory.add_certificates(olds, NOW)
    with inventory.transaction() as session:
        assert inventory.mark_superseded_many(session, list(zip(olds[:3], news[:3])), NOW) == []
    assert [inventory.get("intermediate", i).superseded_by for i in range(1, 6)] == [101, 102, 103, None, None]
    assert sum(e["action"] == "renew" for e in inventory.events()) == 3
    # olds[0] was renewed meanwhile: the whole second batch is refused and rolled back
    other = _record(200, "n1")
    with pytest.raises(RuntimeError):
        with inventory.transaction() as session:
            failed = inventory.mark_superseded_many(session, [(olds[3], news[3]), (olds[0], other)], NOW)
            assert failed == [olds[0]]
            raise RuntimeError("the caller refuses")
    assert inventory.get("intermediate", 4).superseded_by is None


def test_renewable_is_live_not_superseded_with_a_directory(inventory):
    records = [_record(1, "live"), _record(2, "nodir", directory=None), _record(3, "revoked", status="revoked"),
               _record(4, "expired", days=-2 + 1), _record(5, "later", days=300),
               _record(6, "renewed", superseded_by=7)]
    expired = dataclasses.replace(records[3], not_after=NOW - dt.timedelta(hours=1))
    inventory.add_certificates([*records[:3], expired, *records[4:]], NOW)
    assert [r.name for r in inventory.renewable(NOW)] == ["live", "later"]
    assert [r.name for r in inventory.renewable(NOW, NOW + dt.timedelta(days=31))] == ["live"]
