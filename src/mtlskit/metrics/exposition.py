"""The Prometheus text format of one scrape, written by prometheus-client.

The counters come from the slot files of every worker (:mod:`mtlskit.metrics.slots`); the
gauges from the inventory (:mod:`mtlskit.metrics.inventory`) and the running OCSP responders.
Series: the certificate gauges have one per (known profile, state), soonest expiry one per
profile, one per deployment and per CA: none grows with the number of certificates.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Mapping

from mtlskit.metrics.recorder import (
    HTTP_REQUESTS, OCSP_DURATION, OCSP_RESPONSES, bucket_label, ocsp_tallies, parse_key, series_key,
)
from mtlskit.store.metrics import InventoryAggregates

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STATES = ("valid", "expiring", "superseded", "expired", "revoked")
CURRENT_STATES = ("valid", "expiring")   # the ones whose expiry still matters
OTHER = "other"


@dataclasses.dataclass(frozen=True)
class Scrape:
    """What one scrape shows."""

    counts: Mapping[str, float]                 # series key -> value, summed over the workers
    inventory: InventoryAggregates
    responder_expiry: Mapping[str, dt.datetime]  # CA name -> its OCSP responder's notAfter
    profiles: tuple[str, ...]                   # the profile label values (others count as "other")


def render(scrape: Scrape) -> bytes:
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(scrape))
    return generate_latest(registry)


class _Collector:
    def __init__(self, scrape: Scrape) -> None:
        self.scrape = scrape

    def collect(self):
        yield from _certificates(self.scrape)
        yield from _deployments(self.scrape.inventory)
        yield _timestamps("mtlskit_crl_next_update_timestamp_seconds",
                          "nextUpdate of the CRL each CA publishes (the last one signed)", "ca",
                          self.scrape.inventory.crl_next_updates)
        yield _timestamps("mtlskit_ocsp_responder_certificate_expiry_timestamp_seconds",
                          "notAfter of the certificate each CA's OCSP responder signs with", "ca",
                          self.scrape.responder_expiry)
        yield from _ocsp(self.scrape.counts)
        yield _requests(self.scrape.counts)


def _certificates(scrape: Scrape):
    from prometheus_client.core import GaugeMetricFamily

    counts = {(profile, state): 0 for profile in scrape.profiles for state in STATES}
    soonest: dict[str, dt.datetime] = {}
    for group in scrape.inventory.certificates:
        profile = group.profile if group.profile in scrape.profiles else OTHER
        counts[(profile, group.state)] = counts.get((profile, group.state), 0) + group.count
        if group.state in CURRENT_STATES and group.soonest_expiry is not None:
            if profile not in soonest or group.soonest_expiry < soonest[profile]:
                soonest[profile] = group.soonest_expiry
    family = GaugeMetricFamily("mtlskit_certificates",
                               "Certificates in the inventory by profile and state (expiring: within 30 days, "
                               "not renewed; superseded: renewed, not yet expired)", labels=["profile", "status"])
    for (profile, state), count in sorted(counts.items()):
        family.add_metric([profile, state], count)
    yield family
    yield _timestamps("mtlskit_certificate_expiry_timestamp_seconds",
                      "Soonest notAfter among the valid, not renewed certificates of each profile", "profile",
                      soonest)


def _deployments(inventory: InventoryAggregates):
    from prometheus_client.core import GaugeMetricFamily

    family = GaugeMetricFamily("mtlskit_deployment_certificate_expiry_timestamp_seconds",
                               "notAfter of each deployment's current server certificate (the newest of its "
                               "name neither revoked nor renewed)", labels=["server", "name", "directory"])
    for deployment in inventory.deployments:
        if deployment.expiry is not None:
            family.add_metric([deployment.server, deployment.name, deployment.directory],
                              deployment.expiry.timestamp())
    yield family
    missing = GaugeMetricFamily("mtlskit_deployments_without_certificate",
                                "Deployments whose certificate name has no current certificate in the inventory")
    missing.add_metric([], sum(1 for d in inventory.deployments if d.expiry is None))
    yield missing


def _timestamps(name: str, documentation: str, label: str, values: Mapping[str, dt.datetime]):
    from prometheus_client.core import GaugeMetricFamily

    family = GaugeMetricFamily(name, documentation, labels=[label])
    for key, when in sorted(values.items()):
        family.add_metric([key], when.timestamp())
    return family


def _ocsp(counts: Mapping[str, float]):
    from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

    by_status, by_bucket = ocsp_tallies(counts)
    responses = CounterMetricFamily(OCSP_RESPONSES, "OCSP answers by status: the certificate status of a "
                                    "successful response, else the response status", labels=["status"])
    for status, answers in by_status.items():
        responses.add_metric([status], answers)
    yield responses
    buckets, cumulative = [], 0.0
    for index, answers in enumerate(by_bucket):
        cumulative += answers
        buckets.append((bucket_label(index), cumulative))
    duration = HistogramMetricFamily(OCSP_DURATION, "Time to produce an OCSP answer in the serving process "
                                     "(from the whole request read to the response bytes)")
    duration.add_metric([], buckets, counts.get(series_key(OCSP_DURATION + "_sum"), 0.0))
    yield duration


def _requests(counts: Mapping[str, float]):
    from prometheus_client.core import CounterMetricFamily

    family = CounterMetricFamily(HTTP_REQUESTS, "HTTP requests other than /ocsp by route template, method "
                                 "and status code", labels=["route", "method", "code"])
    for key, value in sorted(counts.items()):
        name, labels = parse_key(key)
        if name == HTTP_REQUESTS:
            family.add_metric([labels["route"], labels["method"], labels["code"]], value)
    return family
