"""/metrics of `serve` in-process (httpx ASGI transport, a real CA home and inventory):
what each family says, against the inventory; series that do not grow with certificates;
route templates; the cache; the optional bearer token; --no-metrics."""

from __future__ import annotations

import datetime as dt
import json
import secrets

import pytest
from cryptography import x509

from mtlskit.api.wiring import build_worker
from mtlskit.metrics.inventory import InventoryGauges
from mtlskit.metrics.worker import MetricsOptions
from mtlskit.store.deployments import DeploymentRow, save_deployment
from tests.support_crl import make_home
from tests.support_metrics import expected_state, samples, synthetic_records, value, worker_with_metrics
from tests.support_ocsp import AsgiClient


class Served:
    def __init__(self, tmp_path, count: int, options=None, overrides=None) -> None:
        self.home = make_home(tmp_path)
        self.service, self.worker = worker_with_metrics(self.home, options, overrides)
        self.now = self.service.clock.now()
        self.records = synthetic_records(count, self.now)
        self.service.inventory.add_certificates(self.records, self.now)
        self.client = AsgiClient(self.worker.app)

    def scrape(self, **headers) -> str:
        response = self.client.get("/metrics", headers=headers)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        return response.text


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    return Served(tmp_path_factory.mktemp("metrics"), 60)


def _series(text: str) -> set[tuple]:
    return set(samples(text))


def test_series_do_not_grow_with_the_number_of_certificates(tmp_path):
    """10 and 1,000 certificates (every profile and state in both): the same series."""
    small, large = Served(tmp_path / "small", 10), Served(tmp_path / "large", 1000)
    small_text, large_text = small.scrape(), large.scrape()
    assert _series(small_text) == _series(large_text)
    assert value(large_text, "mtlskit_certificates", profile="client", status="valid") > \
        value(small_text, "mtlskit_certificates", profile="client", status="valid")


def test_certificate_counts_by_profile_and_state_match_the_inventory(served):
    text = served.scrape()
    for profile in ("server", "client", "peer"):
        for state in ("valid", "expiring", "expired", "revoked", "superseded"):
            wanted = sum(1 for r in served.records if r.profile == profile and expected_state(r, served.now) == state)
            assert value(text, "mtlskit_certificates", profile=profile, status=state) == wanted, (profile, state)
    # the CA certificates count under their own profiles, not "other"
    assert value(text, "mtlskit_certificates", profile="root-ca", status="valid") == 1
    assert not [key for key in samples(text) if ("profile", "other") in key[1]]


def test_soonest_expiry_per_profile_counts_only_valid_certificates_not_renewed(served):
    text = served.scrape()
    for profile in ("server", "client", "peer"):
        current = [r.not_after for r in served.records
                   if r.profile == profile and expected_state(r, served.now) in ("valid", "expiring")]
        assert value(text, "mtlskit_certificate_expiry_timestamp_seconds", profile=profile) == \
            min(current).timestamp()


def test_deployment_expiry_is_its_current_certificate(tmp_path):
    served = Served(tmp_path, 0)
    now = served.now
    names = {"web": [now + dt.timedelta(days=5), now + dt.timedelta(days=80)]}
    records = []
    for index, not_after in enumerate(names["web"]):
        record = synthetic_records(1, now, first_serial=500 + index)[0]
        records.append(dataclass_replace(record, name="web", profile="server", not_after=not_after,
                                         superseded_by=501 if index == 0 else None))
    served.service.inventory.add_certificates(records, now)
    save_deployment(served.service.inventory, DeploymentRow("nginx", "web", "/srv/web", "crl", None, "{}"), now)
    save_deployment(served.service.inventory, DeploymentRow("haproxy", "gone", "/srv/gone", "crl", None, "{}"), now)
    text = served.scrape()
    assert value(text, "mtlskit_deployment_certificate_expiry_timestamp_seconds",
                 server="nginx", name="web", directory="/srv/web") == names["web"][1].timestamp()
    assert value(text, "mtlskit_deployments_without_certificate") == 1


def dataclass_replace(record, **changes):
    import dataclasses

    return dataclasses.replace(record, **changes)


def test_crl_next_update_and_responder_expiry_are_what_is_served(served):
    text = served.scrape()
    for ca in ("root", "intermediate"):
        crl = x509.load_der_x509_crl(served.client.get(f"/crl/{ca}.crl").content)
        assert value(text, "mtlskit_crl_next_update_timestamp_seconds", ca=ca) == crl.next_update_utc.timestamp()
    health = served.client.get("/healthz").json()["ocsp_responders_valid_until"]
    for ca, until in health.items():
        assert value(text, "mtlskit_ocsp_responder_certificate_expiry_timestamp_seconds", ca=ca) == \
            dt.datetime.fromisoformat(until).timestamp()


def test_requests_count_by_route_template_never_by_the_path_asked(served):
    token = secrets.token_hex(8)
    for index in range(20):
        served.client.get(f"/crl/{token}-{index}.crl")
        served.client.get(f"/{token}/{index}")
    served.client.request("BREW", f"/{token}")
    text = served.scrape()
    assert token not in text
    assert value(text, "mtlskit_http_requests_total", route="/crl/{filename}", method="GET", code="404") >= 20
    assert value(text, "mtlskit_http_requests_total", route="unmatched", method="GET", code="404") >= 20
    assert value(text, "mtlskit_http_requests_total", route="unmatched", method="other", code="404") >= 1


def test_inventory_aggregates_are_cached_for_a_few_seconds(served):
    ticks = [0.0]
    gauges = InventoryGauges(served.service.inventory.db, served.service.clock, ttl=10, monotonic=lambda: ticks[0])
    served.worker.app.metrics.gauges = gauges
    before = value(served.scrape(), "mtlskit_certificates", profile="client", status="valid")
    served.service.inventory.add_certificates(
        [dataclass_replace(synthetic_records(1, served.now, first_serial=90_000)[0], profile="client")], served.now)
    ticks[0] = 9.9
    assert value(served.scrape(), "mtlskit_certificates", profile="client", status="valid") == before
    assert gauges.queries == 1
    ticks[0] = 10.0
    assert value(served.scrape(), "mtlskit_certificates", profile="client", status="valid") == before + 1
    assert gauges.queries == 2


def test_a_token_file_makes_metrics_need_the_bearer_token(tmp_path):
    served = Served(tmp_path, 1, MetricsOptions(token="s3cret-token"))
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": "Basic s3cret-token"},
                    {"authorization": "Bearer s3cret-token-and-more"}):
        refused = served.client.get("/metrics", headers=headers)
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert "s3cret" not in refused.text and json.loads(refused.text)["status"] == 401
    assert "mtlskit_certificates" in served.scrape(authorization="Bearer s3cret-token")


def test_without_metrics_there_is_no_route_and_nothing_counted(tmp_path):
    from mtlskit.config import load_settings
    from mtlskit.service import Service

    service = Service.open(load_settings(make_home(tmp_path)))
    worker = build_worker(service, service.authority(lambda: None))
    assert AsgiClient(worker.app).get("/metrics").status_code == 404
    assert worker.app.metrics is None


def test_the_workers_of_one_serve_share_the_aggregates_through_their_directory(served, tmp_path):
    ticks = [50.0]
    db, clock = served.service.inventory.db, served.service.clock
    first, second = (InventoryGauges(db, clock, ttl=30, monotonic=lambda: ticks[0], shared_dir=tmp_path)
                     for _ in range(2))
    computed = first.current()
    ticks[0] = 79.0
    assert second.current() == computed and (first.queries, second.queries) == (1, 0)
    ticks[0] = 80.0  # the shared result is as old as the interval: the next one to scrape queries again
    second.current()
    assert (first.queries, second.queries) == (1, 1)
    (tmp_path / "inventory.json").write_text("{not json")
    ticks[0] = 200.0
    assert first.current() == computed and first.queries == 2  # a broken file is a miss, not an error
