"""`deploy nginx --policy --authz-url https://...`: nginx asks /authz on `serve --tls-port`,
checking serve's certificate against the CA before it sends the shared secret."""

from __future__ import annotations

import shutil

import pytest

from tests.support_authz import AuthzStack

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")]


@pytest.fixture(scope="module")
def stack():
    built = AuthzStack(tls=True)
    yield built
    built.close()


def test_decisions_over_tls(stack):
    site = (stack.directory / "mtls-server.conf").read_text()
    assert "proxy_ssl_verify on;" in site and f'server "localhost:{stack.tls_port}";' in site
    reply = stack.request("alice", "/admin/x")
    assert reply.status == 200 and reply.header("X-Client-Authz-Rule") == ["admins"]
    assert stack.request("bob", "/admin/x").status == 403
    assert stack.request("bob", "/public/x").header("X-Client-Authz-Rule") == ["public"]


def _self_signed(directory):
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(key, hashes.SHA256()))
    (directory / "impostor.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return directory / "impostor.pem"


def test_an_impostor_serve_gets_no_secret_and_nothing_is_allowed(stack):
    """Something else listening where serve should be, with a certificate of another CA:
    nginx refuses its certificate before sending anything, and the request is refused."""
    import socket
    import ssl
    import threading

    from mtlskit.cli.app import main
    from tests.support_deploy import ServerProcess, free_port, start_command

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(_self_signed(stack.base)))
    listener = socket.create_server(("127.0.0.1", 0))
    received: list[bytes] = []

    def impostor() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            try:
                with ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.settimeout(2)
                    received.append(tls.recv(65536))
            except (OSError, ssl.SSLError):
                pass

    threading.Thread(target=impostor, daemon=True).start()
    directory, port = stack.base / "impostor-dep", free_port()
    assert main(["--home", str(stack.home), "deploy", "nginx", "--name", "localhost", "--dir", str(directory),
                 "--listen", f"127.0.0.1:{port}", "--upstream", stack.echo.url, "--standalone",
                 "--revocation", "none", "--policy", str(stack.base / "policy.toml"),
                 "--authz-url", f"https://localhost:{listener.getsockname()[1]}"]) == 0
    nginx = ServerProcess(start_command("nginx", directory), port, stack.base / "impostor-nginx.log")
    try:
        from tests.support_authz import Connection
        with Connection(port, stack.context("alice")) as connection:
            assert connection.send("/admin/x").status == 500
    finally:
        nginx.close()
        listener.close()
    secret = (directory / "authz-secret.conf").read_text().split('"')[1].encode()
    assert not any(secret in data for data in received)
