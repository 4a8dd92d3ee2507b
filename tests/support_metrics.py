"""Shared by the metrics tests: synthetic inventories, an in-process worker with /metrics,
and scrapes parsed with prometheus-client's own parser."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

from mtlskit.store.inventory import CertificateRecord

PROFILES = ("server", "client", "peer")
STATES = ("valid", "expiring", "expired", "revoked", "superseded")


def synthetic_records(count: int, now: dt.datetime, first_serial: int = 10_000) -> list[CertificateRecord]:
    """``count`` certificates cycling through the leaf profiles and the five states."""
    records = []
    for i in range(count):
        profile, state = PROFILES[i % len(PROFILES)], STATES[i % len(STATES)]
        serial = first_serial + i
        not_after = {"expiring": now + dt.timedelta(days=10), "expired": now - dt.timedelta(days=1)}.get(
            state, now + dt.timedelta(days=200 + i % 50))
        records.append(CertificateRecord(
            "intermediate", serial, f"synthetic-{serial}", f"CN=synthetic-{serial}", (f"DNS:s{serial}.example",),
            profile, "ec-p256", now - dt.timedelta(days=400), not_after,
            hashlib.sha256(str(serial).encode()).hexdigest(), "-----BEGIN CERTIFICATE-----\n",
            status="revoked" if state == "revoked" else "valid",
            revoked_at=now - dt.timedelta(days=1) if state == "revoked" else None,
            revocation_reason="keyCompromise" if state == "revoked" else None,
            superseded_by=serial + 10**9 if state == "superseded" else None))
    return records


def expected_state(record: CertificateRecord, now: dt.datetime) -> str:
    """The state /metrics gives a record, computed here independently of the SQL."""
    if record.status == "revoked":
        return "revoked"
    if record.not_after <= now:
        return "expired"
    if record.superseded_by is not None:
        return "superseded"
    return "expiring" if record.not_after <= now + dt.timedelta(days=30) else "valid"


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) -> value, parsed by prometheus-client."""
    from prometheus_client.parser import text_string_to_metric_families

    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(text: str, metric: str, **labels: str) -> float:
    return samples(text)[(metric, tuple(sorted(labels.items())))]


def worker_with_metrics(home: Path, options=None, settings_overrides=None):
    """build_worker of `serve` in this process, metrics on; (service, worker)."""
    from mtlskit.api.wiring import build_worker
    from mtlskit.config import load_settings
    from mtlskit.metrics.worker import MetricsOptions
    from mtlskit.publish.refresher import CrlRefresher
    from mtlskit.service import Service

    service = Service.open(load_settings(home, settings_overrides or {}))
    authority = service.authority(lambda: None)
    CrlRefresher(service, authority).publish_due()  # as `serve` does at start
    return service, build_worker(service, authority, metrics=options or MetricsOptions())
