"""Proof: a fleet issued in the same second (24 h, 30 d, 90 d, 365 d) under the agent's
`--once` pass run every few hours across simulated time. At every step every name has a
live certificate and every CRL's nextUpdate is in the future; the first renewals of each
lifetime spread over its jitter window (measured), not one run.

Time moves with the fixed clock; nothing sleeps. The full proof — 1,000 certificates (250 of each lifetime) across a year, 115,954
renewals, most of them of the 24 h ones — takes about 10 minutes here: it runs only when
asked for (`pytest -m slow tests/integration/test_agent_fleet.py`). Measured on that run:
the first renewals of the 365 d ones fell in 96 passes over 18 days of their 18.25-day
window, the 90 d ones in 27 passes, the 30 d ones in 9. The suite runs 1,000
certificates (25 of 24 h: each renews ~540 times a year; 325 each of 30, 90 and 365 d)
over 70 days, in which the 24 h, 30 d and 90 d ones renew (~20 s here).
"""

from __future__ import annotations

import collections
import math
import datetime as dt

import pytest

from mtlskit.lifecycle.agent import LocalAgent
from mtlskit.lifecycle import plan

from tests.integration.agent_support import (T0, crl_next_updates, issue_fleet, names_with_a_live_certificate,
                                             new_home, no_passphrase, service_at)

FULL_FLEET = {1: 250, 30: 250, 90: 250, 365: 250}
SUITE_FLEET = {1: 25, 30: 325, 90: 325, 365: 325}


def run_fleet(tmp_path, fleet: dict[int, int], days: int, step: dt.timedelta) -> dict:
    home = new_home(tmp_path / "home", "--no-passphrase")
    service = service_at(home)
    lifetimes = issue_fleet(service, tmp_path / "fleet", fleet)
    agent = LocalAgent(service, no_passphrase)
    first_renewal: dict[str, int] = {}
    renewals = 0
    steps = int(dt.timedelta(days=days) / step)
    for number in range(1, steps + 1):
        service.clock.advance(step)
        now = service.clock.now()
        report = agent.run_once()
        problems = [a.line() for a in report.actions if a.kind not in ("renewed", "crl")]
        assert not problems, (now, problems[:5])
        for action in report.actions:
            if action.kind == "renewed":
                renewals += 1
                first_renewal.setdefault(action.target.split()[0], number)
        assert names_with_a_live_certificate(service, now) == len(lifetimes), now
        next_updates = crl_next_updates(service)
        assert len(next_updates) == 2 and all(nu > now for nu in next_updates.values()), (now, next_updates)
    return {"service": service, "lifetimes": lifetimes, "first": first_renewal, "renewals": renewals,
            "fleet": tmp_path / "fleet", "step": step, "counts": fleet}


def spread_of_first_renewals(result: dict) -> dict[int, dict]:
    """Per lifetime (days): in how many runs the first renewals fell, and the span between
    the first and the last of them against the jitter window."""
    by_lifetime = collections.defaultdict(list)
    for name, step in result["first"].items():
        by_lifetime[result["lifetimes"][name]].append(step)
    spread = {}
    step = result["step"]
    for days, steps in by_lifetime.items():
        window = dt.timedelta(days=days) / plan.JITTER_SHARE
        spread[days] = {"renewed": len(steps), "runs": len(set(steps)),
                        "span": (max(steps) - min(steps)) * step, "window": window}
    return spread


def check_spread(result: dict, spread: dict[int, dict], expected: set[int]) -> None:
    step = result["step"]
    assert set(spread) == expected
    for days, figures in spread.items():
        assert figures["renewed"] == result["counts"][days]
        if figures["window"] > 2 * step:
            # spread over the window: the runs of the window that an even spread of these
            # certificates would hit (runs * (1 - e^(-count/runs))), give or take 15 %
            runs = figures["window"] / step
            expected = runs * (1 - math.exp(-figures["renewed"] / runs))
            assert figures["runs"] >= 0.85 * expected, (days, figures, expected)
            assert figures["span"] >= figures["window"] - 2 * step, (days, figures)
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


def report_spread(label: str, result: dict, spread: dict) -> str:
    return (f"\n{label}: {len(result['lifetimes'])} certificates, {result['renewals']} renewals; first renewals: "
            + "; ".join(f"{d} d in {f['runs']} runs over {f['span']} (window {f['window']})"
                        for d, f in sorted(spread.items())))


def test_fleet_70_days_nothing_expires_and_renewals_spread(tmp_path, capsys):
    result = run_fleet(tmp_path, SUITE_FLEET, 70, dt.timedelta(hours=6))
    spread = spread_of_first_renewals(result)
    with capsys.disabled():
        print(report_spread("fleet over 70 days, a pass every 6 h", result, spread))
    check_spread(result, spread, {1, 30, 90})
    check_files_are_the_newest(result)


@pytest.mark.slow
def test_fleet_of_1000_full_year(tmp_path, capsys, request):
    if "slow" not in (request.config.option.markexpr or ""):
        pytest.skip("many minutes: run with -m slow")
    result = run_fleet(tmp_path, FULL_FLEET, 366, dt.timedelta(hours=4))
    spread = spread_of_first_renewals(result)
    with capsys.disabled():
        print(report_spread("fleet over a year, a pass every 4 h", result, spread))
    check_spread(result, spread, {1, 30, 90, 365})
    check_files_are_the_newest(result)
