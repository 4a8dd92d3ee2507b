"""A server certificate replaced under load (issue 12): requests/s and failed requests
while the load client (tests/support_load.py, one process per worker) sends mTLS requests
to a real Nginx, Apache and HAProxy, each deployed by `mtlskit deploy --standalone`.

    python bench/bench_swap.py [--seconds 4] [--swaps 3] [--workers 2] [--servers nginx,apache,haproxy]

Per server and client mode (TLS 1.3 keep-alive, TLS 1.2 a connection per request), in
the same run:
  none       no change (what the client and server do undisturbed);
  by hand    what the guides' cron script does after copying files: `systemctl reload
             nginx` (HUP), `apachectl graceful` (USR1), and for HAProxy a restart;
  mtlskit    a new certificate for the same NAME through `mtlskit deploy --cert-dir`
             (staged files, then HUP / graceful USR1 / HAProxy master reload).
Each of the last two happens ``--swaps`` times during the run. "closed-idle" counts
requests on a keep-alive connection the server closed just before they were sent,
retried once on a new connection as HTTP clients do (not counted as failed). The last
column is the CPU per request of the load client and of the server's processes: the
server (and its echo upstream, not counted) must be the bottleneck, not the client.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO)]

from tests.support_deploy import EchoUpstream  # noqa: E402
from tests.support_load import LoadRun  # noqa: E402
from tests.support_swap import SwapSite  # noqa: E402

MODES = [("1.3", True), ("1.2", False)]


@contextlib.contextmanager
def quiet():
    """mtlskit's own lines (and the echo upstream's) off the terminal, at the descriptor level."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(os.devnull, "wb") as devnull:
        os.dup2(devnull.fileno(), 1)
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def group_cpu(pgid: int) -> float:
    """CPU seconds of the server's process group (its reaped children included)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:           # pgrp; then utime, stime, cutime, cstime
            total += sum(int(v) for v in fields[11:15])
    return total / os.sysconf("SC_CLK_TCK")


def measure(site: SwapSite, action, seconds: float, swaps: int, workers: int, tls: str, keepalive: bool):
    """(load result, server CPU seconds; None when the server was restarted in between)."""
    pgid = site.process.proc.pid
    before = group_cpu(pgid)
    run = LoadRun(site.load_spec(tls=tls, keepalive=keepalive, seconds=seconds, workers=workers)).start()
    if action is not None:
        gap = seconds / (swaps + 1)
        for _ in range(swaps):
            time.sleep(gap)
            with quiet():
                action()
    result = run.wait()
    return result, (group_cpu(pgid) - before if site.process.proc.pid == pgid else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--swaps", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--servers", default="nginx,apache,haproxy")
    args = parser.parse_args()
    upstream = EchoUpstream("bench")
    rows = []
    for server in args.servers.split(","):
        base = Path(tempfile.mkdtemp(prefix=f"mtlskit-bench-swap-{server}-"))
        base.chmod(0o755)
        with quiet():
            site = SwapSite(base, server, upstream.url)
        try:
            for tls, keepalive in MODES:
                for label, action in (("none", None), ("by hand", site.reload_by_hand),
                                      ("mtlskit", site.swap_certificate)):
                    result, server_cpu = measure(site, action, args.seconds, args.swaps, args.workers, tls, keepalive)
                    rows.append((server, f"TLS {tls} {'keep-alive' if keepalive else 'close'}", label, result,
                                 server_cpu))
        finally:
            site.close()
            shutil.rmtree(base, ignore_errors=True)
    upstream.close()
    print(f"\n{args.swaps} changes in {args.seconds:g} s, {args.workers} load processes\n")
    print("| server | client | change | requests/s | failed | closed-idle (retried) | certificates seen "
          "| CPU µs/request: client, server |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for server, mode, label, result, server_cpu in rows:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(result.failures.items()))
        failed = f"{result.failed}" + (f" ({kinds})" if kinds else "")
        count = max(result.ok + result.failed, 1)
        server_part = f"{server_cpu / count * 1e6:.0f}" if server_cpu is not None else "-"
        print(f"| {server} | {mode} | {label} | {result.rate:.0f} | {failed} | {result.closed_idle} "
              f"| {len(result.server_certs)} | {result.client_cpu / count * 1e6:.0f}, {server_part} |")


if __name__ == "__main__":
    main()
