"""/metrics against hostile clients: no request can add a label value of its own (paths,
methods, codes are bounded), and scraping in a loop does not run the inventory query per
scrape."""

from __future__ import annotations

import random

import pytest

from mtlskit.metrics.inventory import InventoryGauges
from tests.support_crl import make_home
from tests.support_metrics import samples, worker_with_metrics
from tests.support_ocsp import AsgiClient

pytestmark = pytest.mark.security

HOSTILE_PATHS = ["/" + "A" * 4000, "/ca/../../etc/passwd", "/crl/%0d%0aevil.crl", "/crl/\u202eevil.crl",
                 '/x%22%7D%201%0Amtlskit_certificates%7Bprofile=%22evil%22%7D%209', "/api/v1/../metrics/x", "/metrics/",
                 "/ocsp2", "/%00", "/ui/" + "é" * 100, "//double", "/crl/", "/ca/{filename}"]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    _service, worker = worker_with_metrics(make_home(tmp_path_factory.mktemp("hostile")))
    return worker, AsgiClient(worker.app)


def _route_labels(text: str) -> set[str]:
    return {dict(labels)["route"] for (name, labels) in samples(text) if name == "mtlskit_http_requests_total"}


def test_no_request_brings_a_label_value_of_its_own(served):
    worker, client = served
    generator = random.Random(13)
    for path in HOSTILE_PATHS:
        client.get(path)
    for _ in range(300):
        token = "".join(generator.choice("abcdefghij/%.{}\"\\") for _ in range(generator.randint(1, 40)))
        method = generator.choice(["GET", "POST", "DELETE", "PROPFIND", "get", "X" * 50, "BREW"])
        client.request(method, "/" + token, headers={"x-forwarded-path": token, "host": token[:20] or "h"})
    text = client.get("/metrics").text
    templates = {getattr(route, "path", None) for route in worker.app.fastapi.routes}
    assert _route_labels(text) <= templates | {"unmatched"}
    series = [(name, labels) for (name, labels) in samples(text) if name == "mtlskit_http_requests_total"]
    assert {dict(labels)["method"] for _, labels in series} <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE",
                                                               "OPTIONS", "other"}
    assert len(series) < 40  # bounded by routes x methods x the codes the app answers, not by the 300+ requests
    assert "evil" not in text and "passwd" not in text and "x-forwarded" not in text


def test_scraping_in_a_loop_queries_the_inventory_once_per_interval(served):
    worker, client = served
    gauges = InventoryGauges(worker.app.metrics.gauges._db, worker.app.metrics.gauges._clock, ttl=10,
                             monotonic=lambda: 100.0)
    worker.app.metrics.gauges = gauges
    for _ in range(100):
        assert client.get("/metrics").status_code == 200
    assert gauges.queries == 1
