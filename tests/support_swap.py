"""A real server deployed by mtlskit, whose server certificate is swapped under load
(tests/e2e/test_swap_*.py and bench/bench_swap.py).

``SwapSite`` runs `mtlskit init`, `crl`, `deploy SERVER --standalone` into ``base``, issues
a client certificate for the load client, and starts the server on a free port (stopped
by PID at ``close``). ``swap_certificate`` issues a second server certificate for the same
NAME and runs the same `deploy` again with ``--cert-dir``: the path a renewal takes
(new files written into the deployment, then the running server applied them).
"""

from __future__ import annotations

import itertools
import os
import signal
from pathlib import Path

from cryptography import x509

from mtlskit.cli.app import main
from tests.support_deploy import ServerProcess, free_port, start_command
from tests.support_load import LoadSpec

NAME = "localhost"


class SwapSite:
    def __init__(self, base: Path, server: str, upstream_url: str, revocation: str = "crl") -> None:
        self.base, self.server, self.upstream_url, self.revocation = base, server, upstream_url, revocation
        self.home, self.deploy_dir, self.port = base / "home", base / "deploy", free_port()
        self._counter = itertools.count(1)
        self.mtlskit("init", "--no-passphrase")
        self.mtlskit("crl")
        self.deploy()
        self.mtlskit("issue", "client", "loader", "--out", base / "loader")
        self.process = self.start()

    def mtlskit(self, *args) -> None:
        code = main(["--home", str(self.home), *map(str, args)])
        if code != 0:
            raise RuntimeError(f"mtlskit {' '.join(map(str, args))} exited with {code}")

    def deploy(self, *extra) -> None:
        self.mtlskit("deploy", self.server, "--name", NAME, "--dns", NAME, "--ip", "127.0.0.1",
                     "--dir", self.deploy_dir, "--listen", f"127.0.0.1:{self.port}",
                     "--upstream", self.upstream_url, "--revocation", self.revocation, "--standalone", *extra)

    def start(self) -> ServerProcess:
        return ServerProcess(start_command(self.server, self.deploy_dir), self.port,
                             self.base / f"stdout-{next(self._counter)}.log")

    def close(self) -> None:
        self.process.close()

    def load_spec(self, **overrides) -> LoadSpec:
        loader = self.base / "loader"
        return LoadSpec(port=self.port, ca=str(loader / "ca.pem"), cert=str(loader / "fullchain.pem"),
                        key=str(loader / "key.pem"), **overrides)

    def served_serial(self) -> int:
        chain = (self.deploy_dir / "server.pem").read_bytes()
        return x509.load_pem_x509_certificate(chain).serial_number

    def swap_certificate(self) -> int:
        """Issue a new server certificate for NAME and deploy it; return its serial."""
        out = self.base / f"next-{next(self._counter)}"
        self.mtlskit("issue", "server", NAME, "--dns", NAME, "--ip", "127.0.0.1", "--out", out)
        self.deploy("--cert-dir", out)
        return x509.load_pem_x509_certificate((out / "cert.pem").read_bytes()).serial_number

    def reload_by_hand(self) -> None:
        """What the guides' cron script does after copying files: `systemctl reload nginx`
        (nginx -s reload: HUP), `apachectl graceful` (USR1), and for HAProxy a restart."""
        if self.server == "haproxy":
            self.process.close()
            self.process = self.start()
            return
        pidfile = self.deploy_dir / ("nginx.pid" if self.server == "nginx" else "apache.pid")
        os.kill(int(pidfile.read_text().split()[0]), signal.SIGHUP if self.server == "nginx" else signal.SIGUSR1)
