"""What the benchmarks share: mtlskit from this source tree as a child process, free
loopback ports, and `mtlskit serve` started, waited for and stopped by PID."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def mtlskit_env(src: Path | None = None) -> dict:
    """The environment of an mtlskit child: this tree's src/ (or ``src``, another tree's)
    first on the path, and none of the caller's MTLSKIT_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MTLSKIT_")}
    env["PYTHONPATH"] = str(src or REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(process: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class ServeProcess:
    """`mtlskit serve` on a free loopback port, returned once GET /healthz answers; its
    output goes to ``log`` (appended). SystemExit when it exits or never answers."""

    def __init__(self, home: Path, *extra: str, log: Path, src: Path | None = None, timeout: float = 60) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        with open(log, "ab") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "mtlskit", "--home", str(home), "serve", "--port", str(self.port), *extra],
                stdout=output, stderr=subprocess.STDOUT, env=mtlskit_env(src))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"mtlskit serve exited: {log.read_text(errors='replace')}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise SystemExit(f"mtlskit serve did not answer: {log.read_text(errors='replace')}")

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        stop(self.process)
