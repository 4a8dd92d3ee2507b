"""`mtlskit serve` under abuse (issue 11): the responder's memory and the other clients'
OCSP latency while one client pipelines requests for N seconds without reading a byte,
and while 2,000 idle connections are held open. ab (C) measures the other clients.

    python bench/bench_abuse.py [--seconds 60] [--idle 2000]

Prints, for each phase (quiet, greedy client, idle connections): requests/s and p50/p99
at concurrency 8, and the responder's RSS at the end of the phase.
"""

from __future__ import annotations

import argparse
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ocsp import ab, check_good, mtlskit  # noqa: E402
from support import ServeProcess  # noqa: E402


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def greedy(port: int, request: bytes, stop: threading.Event, sent: list[int]) -> None:
    """Pipeline OCSP POSTs on one connection and never read an answer."""
    head = (b"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\n"
            b"Content-Length: %d\r\n\r\n" % len(request))
    batch = (head + request) * 200
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(0.5)
        while not stop.is_set():
            try:
                sent[0] += sock.send(batch)
            except (socket.timeout, BlockingIOError):
                continue
            except OSError:
                return


def phase(name: str, url: str, body: Path, seconds: float, pid: int) -> dict:
    csv = Path(tempfile.mkdtemp()) / "p.csv"
    figures = ab(url, body, 8, seconds, False, csv)
    figures.update(phase=name, rss_mib=round(rss_mib(pid), 1))
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--idle", type=int, default=2000)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.idle + 1024)), hard))
    with tempfile.TemporaryDirectory(prefix="mtlskit-bench-abuse-") as scratch:
        work = Path(scratch)
        home, client = work / "home", work / "client"
        mtlskit(home, "init", "--name", "Bench Abuse CA", "--no-passphrase")
        mtlskit(home, "issue", "client", "bench-client", "--out", str(client))
        request = work / "request.der"
        subprocess.run(["openssl", "ocsp", "-issuer", str(client / "chain.pem"), "-cert", str(client / "cert.pem"),
                        "-no_nonce", "-reqout", str(request)], check=True, capture_output=True)
        server = ServeProcess(home, log=work / "serve.log")
        url = f"{server.url}/ocsp"
        rows = []
        try:
            check_good(url, request, "mtlskit", "no nonce")
            rows.append(phase("quiet", url, request, min(args.seconds, 10), server.pid))
            stop, sent = threading.Event(), [0]
            thread = threading.Thread(target=greedy, args=(server.port, request.read_bytes(), stop, sent))
            thread.start()
            time.sleep(1)
            rows.append(phase(f"one client pipelining without reading ({args.seconds:g} s)", url, request,
                              args.seconds, server.pid))
            stop.set()
            thread.join()
            rows[-1]["greedy_sent_mib"] = round(sent[0] / 2**20, 1)
            idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(args.idle)]
            for sock in idle:   # past TCP_DEFER_ACCEPT: a byte, then silence
                sock.send(b"P")
            time.sleep(1)
            rows.append(phase(f"{args.idle} idle connections held", url, request, min(args.seconds, 10), server.pid))
            for sock in idle:
                sock.close()
        finally:
            server.stop()
    for row in rows:
        extra = f", the greedy client got {row['greedy_sent_mib']} MiB in" if "greedy_sent_mib" in row else ""
        print(f"{row['phase']}: {row.get('rps', 0):,.0f} req/s, p50 {row.get('p50_ms')} ms, "
              f"p99 {row.get('p99_ms')} ms, responder RSS {row['rss_mib']} MiB{extra}"
              + (f" ({row['error']})" if "error" in row else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
