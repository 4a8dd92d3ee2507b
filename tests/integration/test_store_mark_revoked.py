"""Inventory.mark_revoked: the status change, audit events and change counter a revocation
writes, and a certificate revoked meanwhile by another process reported, not revoked twice."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.support_crl import issue, make_home, open_service

AT = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.timezone.utc)


def test_mark_revoked_and_a_second_writer_that_lost_the_race(tmp_path):
    home = make_home(tmp_path)
    for name in ("alice", "bob"):
        issue(home, "client", name, tmp_path / "out")
    inventory = open_service(home).inventory
    alice, bob = inventory.find("alice")[0], inventory.find("bob")[0]
    events_before = len(inventory.events(1000))
    counter_before = inventory.change_counter()

    with inventory.transaction() as session:
        assert inventory.mark_revoked(session, [alice], AT, "key-compromise", AT) == []
    assert inventory.change_counter() == counter_before + 1
    stored = inventory.find(f"serial:{alice.serial_hex}")[0]
    assert (stored.status, stored.revoked_at, stored.revocation_reason) == ("revoked", AT, "key-compromise")
    assert inventory.events(1)[0]["action"] == "revoke" and inventory.events(1)[0]["detail"]["name"] == "alice"

    # alice read as valid before the first commit: the stale record is reported back
    with pytest.raises(RuntimeError), inventory.transaction() as session:
        assert inventory.mark_revoked(session, [bob, alice], AT, "superseded", AT) == [alice]
        raise RuntimeError("refused")  # what the revoker's refusal does: everything rolls back
    assert inventory.find("alice")[0].revocation_reason == "key-compromise"
    assert inventory.find("bob")[0].status == "valid"
    assert len(inventory.events(1000)) == events_before + 1
    assert inventory.change_counter() == counter_before + 1
