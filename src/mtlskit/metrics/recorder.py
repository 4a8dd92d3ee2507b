"""What the HTTP layer counts, in this process's :class:`~mtlskit.metrics.slots.Slots`.

Every label value comes from a bounded set fixed by the code, never from the request:
OCSP statuses are the reply's (:data:`OCSP_STATUSES`), routes are the templates of the
app's routes (``/crl/{filename}``, never the path asked for; ``unmatched`` for a path no
route takes), methods outside :data:`METHODS` count as ``other``, and codes are the
status the app answered (100-599); requests the server refuses before any route (malformed
HTTP, heads or bodies too large) count under the route ``unparsed``.
"""

from __future__ import annotations

import bisect
import json

from mtlskit.metrics.slots import Slots

OCSP_RESPONSES = "mtlskit_ocsp_responses_total"
OCSP_DURATION = "mtlskit_ocsp_response_duration_seconds"
OCSP_CELL = "mtlskit_ocsp_answers"  # slot files only: answers by (status, latency bucket)
HTTP_REQUESTS = "mtlskit_http_requests_total"
OCSP_STATUSES = ("good", "revoked", "unknown", "malformed_request", "unauthorized", "try_later",
                 "internal_error", "method_not_allowed")
# The OCSP answer's time in the process: tens of microseconds cached, about a millisecond signed.
LATENCY_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                   0.25, 0.5, 1.0)
FASTEST = LATENCY_BUCKETS[0]
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


def ocsp_cells() -> list[tuple[str, int]]:
    """(status, bucket index) of each OCSP cell, in slot order."""
    return [(status, index) for status in OCSP_STATUSES for index in range(len(LATENCY_BUCKETS) + 1)]


def ocsp_tallies(counts: dict[str, float]) -> tuple[dict[str, float], list[float]]:
    """OCSP answers by status, and by latency bucket (not cumulative), from summed slots."""
    by_status = dict.fromkeys(OCSP_STATUSES, 0.0)
    by_bucket = [0.0] * (len(LATENCY_BUCKETS) + 1)
    for status, index in ocsp_cells():
        answers = counts.get(series_key(OCSP_CELL, status=status, bucket=str(index)), 0.0)
        by_status[status] += answers
        by_bucket[index] += answers
    return by_status, by_bucket


class Recorder:
    """Counts OCSP answers and HTTP requests of one serving process.

    An OCSP answer is one increment of the cell of its (status, latency bucket) and one
    addition to the latency sum: the exposition sums the cells into the counter by status
    and into the histogram (cells not cumulative).
    """

    def __init__(self, slots: Slots) -> None:
        self.slots = slots
        self._values = slots.values
        cells = [slots.slot(series_key(OCSP_CELL, status=status, bucket=str(index)))
                 for status, index in ocsp_cells()]
        if cells != list(range(cells[0], cells[0] + len(cells))):
            raise ValueError("the OCSP cells must be the first slots of a new file")
        per_status = len(LATENCY_BUCKETS) + 1
        self._first_cell = {status: cells[0] + n * per_status for n, status in enumerate(OCSP_STATUSES)}
        self._sum = slots.slot(series_key(OCSP_DURATION + "_sum"))
        self._requests: dict[tuple[str, str, int], int] = {}

    def ocsp_reply(self, reply, seconds: float) -> None:
        """One OCSP answer (an OcspReply; None: a method OCSP does not use) that took
        ``seconds``: the hot path's call, two stores to shared memory."""
        values = self._values
        bucket = 0 if seconds <= FASTEST else bisect.bisect_left(LATENCY_BUCKETS, seconds)
        values[self._first_cell[reply.status if reply is not None else "method_not_allowed"] + bucket] += 1.0
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
