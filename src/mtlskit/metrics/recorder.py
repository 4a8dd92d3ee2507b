"""What the HTTP layer counts, in this process's :class:`~mtlskit.metrics.slots.Slots`.

Every label value comes from a bounded set fixed by the code, never from the request:
OCSP statuses are the reply's (:data:`OCSP_STATUSES`), routes are the templates of the
app's routes (``/crl/{filename}``, never the path asked for; ``unmatched`` for a path no
route takes), methods outside :data:`METHODS` count as ``other``, and codes are the
status the app answered (100-599).
"""

from __future__ import annotations

import bisect
import json
import time

from mtlskit.metrics.slots import Slots

OCSP_RESPONSES = "mtlskit_ocsp_responses_total"
OCSP_DURATION = "mtlskit_ocsp_response_duration_seconds"
HTTP_REQUESTS = "mtlskit_http_requests_total"
OCSP_STATUSES = ("good", "revoked", "unknown", "malformed_request", "unauthorized", "try_later",
                 "internal_error", "method_not_allowed")
# The OCSP answer's time in the process: tens of microseconds cached, about a millisecond signed.
LATENCY_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                   0.25, 0.5, 1.0)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"


def series_key(name: str, **labels: str) -> str:
    """The text naming one series in a slot file."""
    return json.dumps([name, labels], sort_keys=True, separators=(",", ":"))


def parse_key(key: str) -> tuple[str, dict[str, str]]:
    name, labels = json.loads(key)
    return name, labels


def bucket_label(index: int) -> str:
    return "+Inf" if index == len(LATENCY_BUCKETS) else repr(LATENCY_BUCKETS[index])


class Recorder:
    """Counts OCSP answers and HTTP requests of one serving process."""

    timer = staticmethod(time.perf_counter)

    def __init__(self, slots: Slots) -> None:
        self.slots = slots
        self._values = slots.values
        self._ocsp = {status: slots.slot(series_key(OCSP_RESPONSES, status=status)) for status in OCSP_STATUSES}
        # one slot per bucket, not cumulative: the exposition sums them
        self._buckets = [slots.slot(series_key(OCSP_DURATION + "_bucket", le=bucket_label(i)))
                         for i in range(len(LATENCY_BUCKETS) + 1)]
        self._sum = slots.slot(series_key(OCSP_DURATION + "_sum"))
        self._requests: dict[tuple[str, str, int], int] = {}

    def ocsp(self, status: str, seconds: float) -> None:
        """One OCSP answer (the hot path: three stores to shared memory)."""
        values = self._values
        values[self._ocsp[status]] += 1.0
        values[self._buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)]] += 1.0
        values[self._sum] += seconds

    def request(self, route: str | None, method: str, code: int) -> None:
        """One request answered by the app (everything but /ocsp)."""
        key = (route or UNMATCHED, method if method in METHODS else "other", code if 100 <= code <= 599 else 0)
        index = self._requests.get(key)
        if index is None:
            index = self._requests[key] = self.slots.slot(
                series_key(HTTP_REQUESTS, route=key[0], method=key[1], code=str(key[2])))
        if index >= 0:
            self._values[index] += 1.0
