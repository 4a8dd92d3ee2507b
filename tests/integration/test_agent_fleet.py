"""Proof: a fleet of 1,000 certificates issued in the same second (24 h, 30 d, 90 d,
365 d) under `agent --once` run every few hours across simulated time. At every step
every name has a live certificate and every CRL's nextUpdate is in the future; the first
renewals of each lifetime spread over its jitter window (measured), not one run.

Time moves with the fixed clock; nothing sleeps. The full year runs under `-m slow`; the
suite runs the same fleet over the first 250 days (every lifetime renews at least once).
"""

from __future__ import annotations

import collections
import datetime as dt

import pytest

from mtlskit.lifecycle.agent import LocalAgent
from mtlskit.lifecycle import plan

from tests.integration.agent_support import (T0, crl_next_updates, issue_fleet, names_with_a_live_certificate,
                                             new_home, no_passphrase, service_at)

FLEET = {1: 250, 30: 250, 90: 250, 365: 250}
STEP = dt.timedelta(hours=4)


def run_fleet(tmp_path, days: int) -> dict:
    home = new_home(tmp_path / "home", "--no-passphrase")
    service = service_at(home)
    lifetimes = issue_fleet(service, tmp_path / "fleet", FLEET)
    agent = LocalAgent(service, no_passphrase)
    first_renewal: dict[str, int] = {}
    renewals = 0
    steps = int(dt.timedelta(days=days) / STEP)
    for step in range(1, steps + 1):
        service.clock.advance(STEP)
        now = service.clock.now()
        report = agent.run_once()
        problems = [a.line() for a in report.actions if a.kind not in ("renewed", "crl")]
        assert not problems, (now, problems[:5])
        for action in report.actions:
            if action.kind == "renewed":
                renewals += 1
                first_renewal.setdefault(action.target.split()[0], step)
        assert names_with_a_live_certificate(service, now) == len(lifetimes), now
        next_updates = crl_next_updates(service)
        assert len(next_updates) == 2 and all(nu > now for nu in next_updates.values()), (now, next_updates)
    return {"service": service, "lifetimes": lifetimes, "first": first_renewal, "renewals": renewals,
            "fleet": tmp_path / "fleet"}


def spread_of_first_renewals(result: dict) -> dict[int, dict]:
    """Per lifetime (days): in how many runs the first renewals fell, and the span between
    the first and the last of them against the jitter window."""
    by_lifetime = collections.defaultdict(list)
    for name, step in result["first"].items():
        by_lifetime[result["lifetimes"][name]].append(step)
    spread = {}
    for days, steps in by_lifetime.items():
        window = dt.timedelta(days=days) / plan.JITTER_SHARE
        spread[days] = {"renewed": len(steps), "runs": len(set(steps)),
                        "span": (max(steps) - min(steps)) * STEP, "window": window}
    return spread


def check_spread(spread: dict[int, dict], expected: set[int]) -> None:
    assert set(spread) == expected
    for days, figures in spread.items():
        assert figures["renewed"] == FLEET[days]
        if figures["window"] > 2 * STEP:
            # spread over the window: as many runs as the window holds (not one run)
            assert figures["runs"] >= figures["window"] / STEP - 1, (days, figures)
            assert figures["span"] >= figures["window"] - 2 * STEP, (days, figures)
        else:   # a 24 h certificate's window (72 min) is shorter than a run interval
            assert figures["runs"] >= 1


def check_files_are_the_newest(result: dict) -> None:
    """Every directory holds the newest certificate of its name (the renew workflow wrote it)."""
    from cryptography import x509

    inventory = result["service"].inventory
    for name in list(result["lifetimes"])[::50]:
        newest = max(inventory.by_name(name), key=lambda r: r.not_before)
        on_disk = x509.load_pem_x509_certificate((result["fleet"] / name / "cert.pem").read_bytes())
        assert on_disk.serial_number == newest.serial


def test_fleet_250_days_nothing_expires_and_renewals_spread(tmp_path, capsys):
    result = run_fleet(tmp_path, 250)
    spread = spread_of_first_renewals(result)
    with capsys.disabled():
        print(f"\nfleet 250 d: {result['renewals']} renewals; first renewals per lifetime: "
              + "; ".join(f"{d} d: {f['runs']} runs over {f['span']} (window {f['window']})"
                          for d, f in sorted(spread.items())))
    check_spread(spread, {1, 30, 90, 365})
    check_files_are_the_newest(result)


@pytest.mark.slow
def test_fleet_full_year(tmp_path, capsys):
    result = run_fleet(tmp_path, 366)
    spread = spread_of_first_renewals(result)
    with capsys.disabled():
        print(f"\nfleet 366 d: {result['renewals']} renewals")
    check_spread(spread, {1, 30, 90, 365})
    check_files_are_the_newest(result)
