"""Nginx verifies client certificates against `mtlskit serve` with `ssl_ocsp on`
(nginx >= 1.19): a good client gets in, a revoked one is refused, without a reload."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from cryptography import x509

from mtlskit.cli.app import main
from mtlskit.store.inventory import Inventory
from tests.support_ocsp import ServeProcess, free_port, revoke_in_inventory

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists(),
                                 reason="nginx is not installed")]

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

# ssl_ocsp: https://nginx.org/en/docs/http/ngx_http_ssl_module.html#ssl_ocsp
# With `ssl_ocsp_responder` unset nginx would follow the certificate's AIA; it is set
# here for one of the two servers so that both ways are exercised.
CONF = """
worker_processes 1;
error_log {prefix}/error.log info;
pid {prefix}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/tmp; proxy_temp_path {prefix}/tmp; fastcgi_temp_path {prefix}/tmp;
    uwsgi_temp_path {prefix}/tmp; scgi_temp_path {prefix}/tmp;
    server {{
        listen 127.0.0.1:{aia_port} ssl;
        ssl_certificate {server}/fullchain.pem;
        ssl_certificate_key {server}/key.pem;
        ssl_client_certificate {server}/ca.pem;
        ssl_trusted_certificate {chain};
        ssl_verify_client on;
        ssl_verify_depth 2;
        ssl_ocsp leaf;
        location / {{ return 200 "hello $ssl_client_s_dn\\n"; }}
    }}
    server {{
        listen 127.0.0.1:{explicit_port} ssl;
        ssl_certificate {server}/fullchain.pem;
        ssl_certificate_key {server}/key.pem;
        ssl_client_certificate {server}/ca.pem;
        ssl_trusted_certificate {chain};
        ssl_verify_client on;
        ssl_verify_depth 2;
        ssl_ocsp on;
        ssl_ocsp_responder {ocsp_url};
        location / {{ return 200 "hello $ssl_client_s_dn\\n"; }}
    }}
}}
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    base = tmp_path_factory.mktemp("nginx-ocsp")
    home, out, prefix = base / "home", base / "out", base / "nginx"
    (prefix / "tmp").mkdir(parents=True)
    port = free_port()
    assert main(["--home", str(home), "init", "--name", "Nginx OCSP CA", "--no-passphrase",
                 "--public-url", f"http://127.0.0.1:{port}"]) == 0
    assert main(["--home", str(home), "issue", "server", "localhost", "--ip", "127.0.0.1",
                 "--out", str(out / "server")]) == 0
    for name in ("alice", "bob"):
        assert main(["--home", str(home), "issue", "client", name, "--out", str(out / name)]) == 0
    server = ServeProcess(home, port, "--ocsp-refresh-seconds", "1")
    ports = {"aia_port": free_port(), "explicit_port": free_port()}
    (prefix / "nginx.conf").write_text(CONF.format(prefix=prefix, server=out / "server", chain=home / "ca" / "intermediate.pem",
                                                   ocsp_url=f"{server.url}/ocsp", **ports))
    nginx = subprocess.Popen([NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-g", "daemon off;"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for_port(ports["aia_port"], nginx)
        yield {"home": home, "out": out, "prefix": prefix, **ports, "nginx": nginx}
    finally:
        nginx.terminate()
        try:
            nginx.wait(timeout=10)
        except subprocess.TimeoutExpired:
            nginx.kill()
        server.stop()


def _wait_for_port(port: int, process: subprocess.Popen) -> None:
    import socket

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"nginx exited: {process.stderr.read().decode()}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("nginx did not start")


def curl(stack, name: str, port: int) -> tuple[int, str]:
    client = stack["out"] / name
    result = subprocess.run(
        ["curl", "-sS", "--cacert", str(stack["out"] / "server" / "ca.pem"), "--cert", str(client / "cert.pem"),
         "--key", str(client / "key.pem"), "-w", "\n%{http_code}", f"https://127.0.0.1:{port}/"],
        capture_output=True, timeout=30)
    body, _, code = result.stdout.decode().rpartition("\n")
    return int(code or 0), body


@pytest.mark.parametrize("port_key", ["aia_port", "explicit_port"])
def test_good_client_gets_in(stack, port_key):
    code, body = curl(stack, "alice", stack[port_key])
    assert code == 200, body
    assert "CN=alice" in body


def test_revoked_client_is_refused_without_reloading_nginx(stack):
    assert curl(stack, "bob", stack["aia_port"])[0] == 200
    serial = x509.load_pem_x509_certificate((stack["out"] / "bob" / "cert.pem").read_bytes()).serial_number
    inventory = Inventory.open(f"sqlite:///{stack['home'] / 'inventory.db'}")
    revoke_in_inventory(inventory, "intermediate", serial, "keyCompromise", dt.datetime.now(dt.timezone.utc))
    # `mtlskit serve` reads the change marker at most every --ocsp-refresh-seconds (1 s here).
    deadline = time.monotonic() + 15
    code, body = curl(stack, "bob", stack["aia_port"])
    while code == 200 and time.monotonic() < deadline:
        time.sleep(0.2)
        code, body = curl(stack, "bob", stack["aia_port"])
    assert code == 400, body  # nginx answers 400 "The SSL certificate error"
    assert "SSL certificate error" in body
    assert curl(stack, "bob", stack["explicit_port"])[0] == 400
    assert curl(stack, "alice", stack["aia_port"])[0] == 200  # the others still get in
    log = (stack["prefix"] / "error.log").read_text()
    assert "certificate revoked" in log or "revoked" in log
    assert stack["nginx"].poll() is None  # the same nginx process, never reloaded
