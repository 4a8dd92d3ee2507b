"""Helpers for the agent's tests: a CA home at a fixed time, fleets issued in one second,
and the inventory questions the proofs ask at every step."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path


from mtlskit.cli.app import main
from mtlskit.clock import FixedClock
from mtlskit.config import load_settings
from mtlskit.issue.bundle import BundleOptions
from mtlskit.issue.issuer import IssueRequest
from mtlskit.issue.profiles import get_profile
from mtlskit.issue.workflow import issue_batch
from mtlskit.pki.keys import KeyType
from mtlskit.service import Service

T0 = dt.datetime(2027, 3, 1, 12, 0, 0, tzinfo=dt.timezone.utc)


def new_home(path: Path, *extra: str) -> Path:
    code = main(["--home", str(path), "init", "--name", "Agent Test CA", *extra])
    assert code == 0
    return path


def service_at(home: Path, at: dt.datetime = T0) -> Service:
    return Service.open(load_settings(home), FixedClock(at))


def no_passphrase() -> None:
    return None


def issue_fleet(service: Service, out: Path, counts: dict[int, int], profile: str = "client") -> dict[str, int]:
    """Issue ``counts[days]`` certificates of each lifetime, all at the service's time,
    each into out/<name>/; returns name -> lifetime in days."""
    authority = service.authority(no_passphrase)
    lifetimes = {}
    for days, count in counts.items():
        names = [f"d{days}-{i:04d}" for i in range(count)]
        requests = [IssueRequest(get_profile(profile), name, days=days) for name in names]
        issue_batch(service, authority, requests, [out / n for n in names], KeyType.EC_P256, BundleOptions())
        lifetimes.update({name: days for name in names})
    return lifetimes


_FLEET_NAME = re.compile(r"d[0-9]+-[0-9]{4}")   # issue_fleet's names


def names_with_a_live_certificate(service: Service, now: dt.datetime) -> int:
    """How many names of a fleet (issue_fleet's names) have at least one certificate valid
    at ``now`` (not revoked)."""
    with service.inventory.read() as tx:   # LIKE on both databases (GLOB is SQLite's), the shape checked here
        names = tx.all("SELECT DISTINCT name FROM certificates WHERE status != 'revoked'"
                       " AND name LIKE 'd%-____' AND not_before <= ? AND not_after > ?", (now, now))
    return sum(1 for (name,) in names if _FLEET_NAME.fullmatch(name))


def crl_next_updates(service: Service) -> dict[str, dt.datetime]:
    from mtlskit.publish import crls

    return {name: info["next_update"] for name, info in crls.published(service).items()}
