"""Test support for the deploy area: a throw-away PKI, an echo upstream, server runners.

The PKI is built with ``cryptography`` directly (root -> intermediate -> leaves) so the
deploy tests do not depend on the issuance workflow; it covers every client a server
must accept or refuse. Servers are started on 127.0.0.1 free ports and stopped by PID.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import http.client
import http.server
import json
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


# --- PKI ---------------------------------------------------------------------------------

@dataclasses.dataclass
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())


def _name(cn: str, ou: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mtlskit tests")]
    if ou:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _serial() -> int:
    return int.from_bytes(os.urandom(16), "big") >> 1 | (1 << 120)


def make_ca(cn: str, parent: Issued | None = None, path_length: int | None = None) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    issuer = parent.cert.subject if parent else _name(cn)
    signing_key = parent.key if parent else key
    builder = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(issuer)
               .public_key(key.public_key()).serial_number(_serial())
               .not_valid_before(NOW - dt.timedelta(days=30)).not_valid_after(NOW + dt.timedelta(days=3650))
               .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
               .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    if parent:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(parent.key.public_key()), critical=False)
    return Issued(builder.sign(signing_key, hashes.SHA256()), key)


def make_leaf(ca: Issued, cn: str, eku: list, sans: list | None = None, ou: str | None = None,
              not_after: dt.datetime | None = None, serial: int | None = None,
              subject: x509.Name | None = None) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    not_after = not_after or NOW + dt.timedelta(days=365)
    builder = (x509.CertificateBuilder().subject_name(subject or _name(cn, ou)).issuer_name(ca.cert.subject)
               .public_key(key.public_key()).serial_number(serial or _serial())
               .not_valid_before(min(NOW - dt.timedelta(days=1), not_after - dt.timedelta(days=2)))
               .not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
               .add_extension(x509.ExtendedKeyUsage(eku), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return Issued(builder.sign(ca.key, hashes.SHA256()), key)


def make_crl(ca: Issued, revoked: list[Issued] = (), number: int = 1) -> x509.CertificateRevocationList:
    builder = (x509.CertificateRevocationListBuilder().issuer_name(ca.cert.subject)
               .last_update(NOW - dt.timedelta(minutes=5)).next_update(NOW + dt.timedelta(days=7))
               .add_extension(x509.CRLNumber(number), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False))
    for leaf in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(leaf.cert.serial_number)
            .revocation_date(NOW - dt.timedelta(minutes=10)).build())
    return builder.sign(ca.key, hashes.SHA256())


def crl_bundle(*crls: x509.CertificateRevocationList) -> bytes:
    return b"".join(crl.public_bytes(serialization.Encoding.PEM) for crl in crls)


CLIENT = [ExtendedKeyUsageOID.CLIENT_AUTH]
SERVER = [ExtendedKeyUsageOID.SERVER_AUTH]


@dataclasses.dataclass
class TestPki:
    """Root + intermediate, a server, and one client of each kind the servers must judge."""

    root: Issued
    intermediate: Issued
    server: Issued
    clients: dict[str, Issued]
    other_root: Issued

    @property
    def ca_certificates(self) -> list[x509.Certificate]:
        return [self.root.cert, self.intermediate.cert]

    def crls(self, revoked: list[str] = ("revoked",), number: int = 1) -> list[x509.CertificateRevocationList]:
        return [make_crl(self.root, [], number),
                make_crl(self.intermediate, [self.clients[n] for n in revoked], number)]

    def write_client(self, directory: Path, name: str) -> tuple[Path, Path]:
        """Write a client's cert (leaf + intermediate) and key; return (cert, key)."""
        leaf = self.clients[name]
        cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
        chain = leaf.pem() + (self.intermediate.pem() if name != "other-ca" else b"")
        cert_path.write_bytes(chain)
        key_path.write_bytes(leaf.key_pem())
        key_path.chmod(0o600)
        return cert_path, key_path


def build_pki() -> TestPki:
    root = make_ca("mtlskit test root", path_length=1)
    inter = make_ca("mtlskit test intermediate", root, path_length=0)
    server = make_leaf(inter, "localhost", SERVER,
                       sans=[x509.DNSName("localhost"), x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))])
    other_root = make_ca("some other root")
    clients = {
        "alice": make_leaf(inter, "alice", CLIENT, ou="engineering"),
        "admin": make_leaf(inter, "admin", CLIENT, ou="ops"),
        # top bit set: DER pads it with 0x00, servers print the magnitude only
        "bob": make_leaf(inter, "bob", CLIENT, serial=(1 << 127) | _serial()),
        "carol": make_leaf(inter, "carol", CLIENT, sans=[x509.RFC822Name("carol@example.com")]),
        "revoked": make_leaf(inter, "mallory", CLIENT),
        "expired": make_leaf(inter, "expired", CLIENT, not_after=NOW - dt.timedelta(days=1)),
        "server-only": make_leaf(inter, "server-only", SERVER),
        "other-ca": make_leaf(other_root, "alice", CLIENT),
    }
    return TestPki(root, inter, server, clients, other_root)


# --- echo upstream ---------------------------------------------------------------------------

class _EchoHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        body = json.dumps({"upstream": self.server.label, "path": self.path,
                           "headers": [[k, v] for k, v in self.headers.items()]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


class EchoUpstream:
    """An HTTP server on 127.0.0.1 that answers every GET with the request headers as JSON."""

    def __init__(self, label: str) -> None:
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EchoHandler)
        self.httpd.label = label
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- clients ---------------------------------------------------------------------------------

@dataclasses.dataclass
class Outcome:
    """What a client saw: an HTTP status and body, or a TLS/connection failure."""

    status: int | None = None
    body: bytes = b""
    tls_error: str | None = None

    def json(self) -> dict:
        return json.loads(self.body)

    def header(self, name: str) -> list[str]:
        return [v for k, v in self.json()["headers"] if k.lower() == name.lower()]


def get(port: int, path: str, ca: Path, cert: tuple[Path, Path] | None = None,
        headers: dict | None = None, post_handshake_auth: bool = False) -> Outcome:
    """GET https://127.0.0.1:port/path with an optional client certificate."""
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.check_hostname = False
    if post_handshake_auth:
        ctx.post_handshake_auth = True
    if cert:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return Outcome(status=resp.status, body=resp.read())
    except (ssl.SSLError, ConnectionError, http.client.RemoteDisconnected) as exc:
        return Outcome(tls_error=f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()


def resume_get(port: int, ctx: ssl.SSLContext, session: ssl.SSLSession | None = None
               ) -> tuple[Outcome, ssl.SSLSession | None, bool]:
    """GET / on a raw TLS socket, optionally resuming ``session``; returns (outcome, session, reused)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        tls = ctx.wrap_socket(sock, session=session)
    except (ssl.SSLError, ConnectionError) as exc:
        sock.close()
        return Outcome(tls_error=f"{type(exc).__name__}: {exc}"), None, False
    try:
        tls.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        return Outcome(status=int(head.split(b" ")[1]), body=body), tls.session, tls.session_reused
    except (ssl.SSLError, ConnectionError, IndexError, ValueError) as exc:
        return Outcome(tls_error=f"{type(exc).__name__}: {exc}"), None, False
    finally:
        tls.close()


def client_context(ca: Path, cert: tuple[Path, Path]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.check_hostname = False
    ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    return ctx


# --- server processes ------------------------------------------------------------------------

class ServerProcess:
    """A real server started in the foreground; stopped by PID (process group) at close()."""

    def __init__(self, argv: list[str], port: int, log: Path) -> None:
        self.argv, self.port, self.log = argv, port, log
        self._log_file = open(log, "wb")
        self.proc = subprocess.Popen(argv, stdout=self._log_file, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self._wait_listening()

    def _wait_listening(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.argv[0]} exited with {self.proc.returncode}: "
                                   f"{self.log.read_text(errors='replace')[-2000:]}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        self.close()
        raise RuntimeError(f"{self.argv[0]} did not listen on {self.port}")

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._log_file.close()


def start_command(server: str, directory: Path) -> list[str]:
    """The documented foreground command for a standalone deployment."""
    if server == "nginx":
        return ["nginx", "-p", str(directory), "-c", str(directory / "nginx.conf")]
    if server == "apache":
        return ["apache2", "-f", str(directory / "httpd.conf"), "-DFOREGROUND"]
    return ["haproxy", "-f", str(directory / "haproxy.cfg"), "-db"]


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.1, times: int = 3) -> bool:
    """Poll predicate() until it holds ``times`` times in a row, or timeout.

    Reloads are asynchronous: after `nginx -s reload` an old worker may still accept a
    connection or two until it has seen the signal, so one refusal is not yet proof.
    """
    deadline = time.monotonic() + timeout
    streak = 0
    while time.monotonic() < deadline:
        streak = streak + 1 if predicate() else 0
        if streak >= times:
            return True
        time.sleep(interval)
    return False


# --- a minimal OCSP responder (RFC 6960) for the servers' OCSP client tests --------------------

class OcspResponder:
    """Answers OCSP requests (POST, and GET with the base64 request in the path, RFC 6960
    appendix A.1) about leaves of ``ca``, signed by ``ca`` itself; serials in ``revoked``
    are "revoked", every other known serial "good"."""

    def __init__(self, ca: Issued, leaves: list[Issued], revoked: set[int]) -> None:
        responder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                data = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self._answer(data)

            def do_GET(self) -> None:  # noqa: N802
                import base64
                import urllib.parse
                self._answer(base64.b64decode(urllib.parse.unquote(self.path.rsplit("/", 1)[-1])))

            def _answer(self, der: bytes) -> None:
                body = responder.respond(der)
                responder.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/ocsp-response")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.ca, self.revoked, self.requests = ca, revoked, 0
        self.leaves = {leaf.cert.serial_number: leaf.cert for leaf in leaves}
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/ocsp"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def respond(self, der: bytes) -> bytes:
        from cryptography.x509 import ocsp
        request = ocsp.load_der_ocsp_request(der)
        leaf = self.leaves.get(request.serial_number)
        if leaf is None:
            return ocsp.OCSPResponseBuilder.build_unsuccessful(
                ocsp.OCSPResponseStatus.UNAUTHORIZED).public_bytes(serialization.Encoding.DER)
        revoked = request.serial_number in self.revoked
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        builder = ocsp.OCSPResponseBuilder().add_response(
            cert=leaf, issuer=self.ca.cert, algorithm=request.hash_algorithm,
            cert_status=ocsp.OCSPCertStatus.REVOKED if revoked else ocsp.OCSPCertStatus.GOOD,
            this_update=now - dt.timedelta(minutes=1), next_update=now + dt.timedelta(hours=1),
            revocation_time=now - dt.timedelta(hours=1) if revoked else None,
            revocation_reason=None,
        ).responder_id(ocsp.OCSPResponderEncoding.HASH, self.ca.cert).certificates([self.ca.cert])
        for extension in request.extensions:       # echo a nonce (RFC 8954)
            if isinstance(extension.value, x509.OCSPNonce):
                builder = builder.add_extension(extension.value, critical=False)
        return builder.sign(self.ca.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
