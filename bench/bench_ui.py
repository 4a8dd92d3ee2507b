"""Benchmark: server time of each web UI page with N certificates in the inventory.

Fills the inventory of a fresh CA home with N synthetic rows (tests/support_ui.py
``fill_inventory``: no signing, one "issue" audit event each), then requests every page
in-process through the ASGI app (httpx's ASGI transport: the time is the server's, no
network), R times each, and prints the median and the slowest per page against the
target (200 ms).

    python bench/bench_ui.py --count 100000 --repeat 15
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support_ui import UiPki, fill_inventory  # noqa: E402
from mtlskit.ui.session import COOKIE  # noqa: E402

TARGET_MS = 200


def pages(pki: UiPki) -> dict[str, str]:
    alice = pki.record("alice")
    deep = pki.service.inventory.db
    with deep.read() as tx:
        late_id = tx.scalar("SELECT id FROM certificates ORDER BY not_after DESC, id DESC LIMIT 1 OFFSET 120")
        some = tx.one("SELECT issuer, serial FROM certificates WHERE name = 'c054321'")
    return {
        "certificates": "/ui/certificates",
        "certificates, page after row ~N-120": f"/ui/certificates?after={late_id}",
        "certificates, previous page": f"/ui/certificates?before={late_id}",
        "sorted latest expiry first": "/ui/certificates?sort=-expiry",
        "filter valid + client": "/ui/certificates?status=valid&profile=client",
        "filter revoked": "/ui/certificates?status=revoked",
        "filter expired": "/ui/certificates?status=expired",
        "expiring within 30 days": "/ui/certificates?expiring=30",
        "search NAME prefix c0543 (100 matches)": "/ui/certificates?q=c0543",
        "search NAME prefix c05 (10,000)": "/ui/certificates?q=c05",
        "search NAME prefix c (all)": "/ui/certificates?q=c&sort=-expiry",
        "search no match (zz)": "/ui/certificates?q=zz",
        f"search serial {some[1][:8]}...": f"/ui/certificates?q={some[1]}",
        "detail (with history)": f"/ui/certificates/{some[0]}/{some[1]}",
        "detail of alice": f"/ui/certificates/intermediate/{alice.serial_hex}",
        "revoke form": f"/ui/certificates/{some[0]}/{some[1]}/revoke",
        "timeline (SVG)": "/ui/timeline",
        "CRL & OCSP status": "/ui/status",
        "deployments": "/ui/deployments",
        "issue form": "/ui/issue",
    }


async def measure(app, cookie: str, urls: dict[str, str], repeat: int) -> dict[str, list[float]]:
    import httpx

    times: dict[str, list[float]] = {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench",
                                 cookies={COOKIE: cookie}) as client:
        for label, url in urls.items():
            for _ in range(repeat):
                start = time.perf_counter()
                response = await client.get(url)
                times.setdefault(label, []).append((time.perf_counter() - start) * 1000)
                assert response.status_code == 200, (url, response.status_code, response.text[:300])
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ui-") as work:
        pki = UiPki(Path(work))
        start = time.perf_counter()
        fill_inventory(pki.service, pki.record("alice"), args.count)
        print(f"setup: {args.count:,} certificates recorded in {time.perf_counter() - start:.1f} s")
        browser = pki.login()
        times = asyncio.run(measure(pki.worker.app, browser.cookie, pages(pki), args.repeat))
    print(f"{'page':42} {'median ms':>10} {'p90 ms':>8} {'max ms':>8}   (target {TARGET_MS} ms, "
          f"{args.repeat} requests each; load average {os.getloadavg()[0]:.1f})")
    worst_median = 0.0
    for label, values in times.items():
        median, p90 = statistics.median(values), statistics.quantiles(values, n=10)[-1]
        worst_median = max(worst_median, median)
        print(f"{label:42} {median:10.1f} {p90:8.1f} {max(values):8.1f}")
    print(f"slowest page (median): {worst_median:.1f} ms -> "
          f"{'within' if worst_median < TARGET_MS else 'OVER'} the {TARGET_MS} ms target")


if __name__ == "__main__":
    main()
