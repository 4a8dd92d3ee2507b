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
import socket
import ssl
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

    def renew_certificate(self) -> int:
        """`mtlskit renew serial:HEX` of the deployed certificate (earlier swaps left other live
        certificates under NAME): the successor is installed into the deployment and the
        server reloaded by the renew workflow itself (deploy/renewal.py); return its serial."""
        out = self.base / f"renewed-{next(self._counter)}"
        self.mtlskit("renew", f"serial:{self.served_serial():x}", "--out", out)
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

    def served_serial_now(self) -> int:
        """The serial of the certificate a new handshake gets now."""
        loader = self.base / "loader"
        return served_serial(self.port, loader / "ca.pem", (loader / "fullchain.pem", loader / "key.pem"))


def served_serial(port: int, ca: Path, client: tuple[Path, Path]) -> int:
    """The serial of the server certificate a new handshake on 127.0.0.1:port gets."""
    context = ssl.create_default_context(cafile=str(ca))
    context.load_cert_chain(str(client[0]), str(client[1]))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        with context.wrap_socket(sock, server_hostname=NAME) as tls:
            der = tls.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der).serial_number
