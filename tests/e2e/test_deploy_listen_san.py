"""An auto-issued server certificate names the specific IP it listens on (issue 10).

Clients that connect by address (`https://127.0.0.1:8443`) check the address against the
certificate's IP SANs; a certificate issued for `--listen 127.0.0.1:PORT` must carry it.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import socket
import ssl
import subprocess
import tempfile
from pathlib import Path

import pytest
from cryptography import x509

from mtlskit.deploy.options import parse_listen
from mtlskit.deploy.workflow import with_listen_ip
from mtlskit.issue.issuer import SanRequest
from tests.support_deploy import ServerProcess, free_port, start_command

pytestmark = pytest.mark.e2e


def _ip_sans(directory: Path) -> list[str]:
    leaf = x509.load_pem_x509_certificates((directory / "server.pem").read_bytes())[0]
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [str(ip) for ip in names.get_values_for_type(x509.IPAddress)]


@pytest.fixture
def deploy_dir():
    base = Path(tempfile.mkdtemp(prefix="mtlskit-san-"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def test_issued_certificate_carries_the_listen_ip_and_verifies_by_address(fresh_home, deploy_dir, cli):
    port = free_port()
    target = deploy_dir / "nginx"
    result = cli("--home", fresh_home, "deploy", "nginx", "--name", "api.example.com", "--dir", target,
                 "--listen", f"127.0.0.1:{port}", "--revocation", "none", "--standalone", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["certificate"]["issued"] is True
    assert _ip_sans(target) == ["127.0.0.1"]
    ca = target / "client-ca.pem"
    process = ServerProcess(start_command("nginx", target), port, deploy_dir / "stdout.log")
    try:
        # Python's ssl checks an IP server_hostname against the IP SANs only.
        ctx = ssl.create_default_context(cafile=str(ca))
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            with ctx.wrap_socket(sock, server_hostname="127.0.0.1") as tls:
                assert tls.version() in ("TLSv1.2", "TLSv1.3")
        # openssl as the independent judge: -verify_ip, and a wrong address fails.
        verdicts = {ip: _openssl_verify(port, ca, ip) for ip in ("127.0.0.1", "127.0.0.2")}
    finally:
        process.close()
    assert "Verification: OK" in verdicts["127.0.0.1"]
    assert "IP address mismatch" in verdicts["127.0.0.2"]


def _openssl_verify(port: int, ca: Path, ip: str) -> str:
    proc = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", str(ca),
                           "-verify_ip", ip, "-verify_return_error", "-brief"], input="", capture_output=True, text=True, timeout=20)
    return proc.stdout + proc.stderr


def test_wildcard_or_named_listen_adds_no_ip_and_a_given_ip_is_not_doubled():
    assert with_listen_ip(SanRequest(), parse_listen("8443")) == SanRequest()
    assert with_listen_ip(SanRequest(), parse_listen("0.0.0.0:8443")) == SanRequest()
    assert with_listen_ip(SanRequest(), parse_listen("[::]:8443")) == SanRequest()
    assert with_listen_ip(SanRequest(), parse_listen("api.example.com:8443")) == SanRequest()
    assert with_listen_ip(SanRequest(ip=("10.0.0.5",)), parse_listen("10.0.0.5:443")).ip == ("10.0.0.5",)
    assert with_listen_ip(SanRequest(ip=("10.0.0.6",)), parse_listen("10.0.0.5:443")).ip == ("10.0.0.6", "10.0.0.5")
    assert with_listen_ip(SanRequest(ip=("0:0::1",)), parse_listen("[::1]:443")).ip == ("0:0::1",)


def test_ipv6_listen_is_an_ip_san(fresh_home, deploy_dir, cli):
    result = cli("--home", fresh_home, "deploy", "haproxy", "--name", "api.example.com",
                 "--dir", deploy_dir / "h", "--listen", "[::1]:8443", "--revocation", "none")
    assert result.code == 0, result.err
    assert [ipaddress.ip_address(ip) for ip in _ip_sans(deploy_dir / "h")] == [ipaddress.ip_address("::1")]
