"""A real Nginx deployed with `mtlskit deploy nginx --policy`, a real `mtlskit serve`
answering its /authz subrequests, and an echo upstream that says what it received.

Built once per test module (the fixture closes everything by PID); clients send raw
requests over TLS so that paths reach Nginx exactly as written."""

from __future__ import annotations

import http.server
import json
import shutil
import socket
import ssl
import tempfile
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from mtlskit.cli.app import main
from tests.support_deploy import ServerProcess, free_port, start_command
from tests.support_ocsp import ServeProcess

POLICY = '''
[[rule]]
name = "admins"
match = { cn = ["alice"], san_uri = ["spiffe://corp/admin/*"] }
paths = ["/admin/"]
methods = ["GET", "POST"]

[[rule]]
name = "public"
match = { cn = ["alice", "bob", "carol", "mallory"] }
paths = ["/public/"]
'''

# name -> extra `issue client` flags; "eve" is issued by this CA but named by no rule.
CLIENTS = {"alice": (), "bob": (), "carol": (), "mallory": (), "eve": (),
           "ci": ("--uri", "spiffe://corp/admin/ci"), "intruder": ("--uri", "spiffe://corp/administrator")}


class _Echo(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _echo(self) -> None:
        self.server.requests.append((self.command, self.path))
        body = json.dumps({"method": self.command, "path": self.path,
                           "headers": [[k, v] for k, v in self.headers.items()]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _echo

    def log_message(self, *args) -> None:
        pass


class Echo:
    def __init__(self) -> None:
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
        self.httpd.requests = []
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def requests(self) -> list:
        return self.httpd.requests

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _run(*args) -> None:
    assert main([str(a) for a in args]) == 0, args


class AuthzStack:
    """home (CA), clients/<name>/, dep/ (the nginx deployment), serve, nginx, echo."""

    def __init__(self, policy: str = POLICY, revocation: str = "none", tls: bool = False) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="mtlskit-authz-"))
        self.base.chmod(0o755)          # nginx's workers (nobody, when run as root) reach its temp dirs
        self.home = self.base / "home"
        self.serve_port, self.port = free_port(), free_port()
        # tls: nginx asks /authz on serve's --tls-port, checking its certificate
        self.tls_port = free_port() if tls else None
        self.processes: list = []
        self.echo = Echo()
        try:
            self._build(policy, revocation)
        except BaseException:
            self.close()
            raise

    def _build(self, policy: str, revocation: str) -> None:
        _run("--home", self.home, "init", "--name", "Authz CA", "--no-passphrase",
             "--public-url", f"http://127.0.0.1:{self.serve_port}")
        for name, extra in CLIENTS.items():
            _run("--home", self.home, "issue", "client", name, "--out", self.base / "clients" / name, *extra)
        (self.base / "policy.toml").write_text(policy)
        self.directory = self.base / "dep"
        _run("--home", self.home, "deploy", "nginx", "--name", "localhost", "--dir", self.directory,
             "--listen", f"127.0.0.1:{self.port}", "--upstream", self.echo.url, "--standalone",
             "--revocation", revocation, "--policy", self.base / "policy.toml",
             *(("--authz-url", f"https://localhost:{self.tls_port}") if self.tls_port else ()))
        self.start_serve()
        self.nginx = ServerProcess(start_command("nginx", self.directory), self.port, self.base / "nginx.log")
        self.processes.append(self.nginx)

    def start_serve(self) -> None:
        tls = ("--tls-port", str(self.tls_port)) if self.tls_port else ()
        self.serve = ServeProcess(self.home, self.serve_port, "--ocsp-refresh-seconds", "1", *tls,
                                  log=self.base / f"serve-{len(self.processes)}.log")
        self.processes.append(self.serve)

    @property
    def secret(self) -> str:
        return (self.directory / "authz-secret.conf").read_text().split('"')[1]

    def fingerprint(self, name: str) -> str:
        cert = x509.load_pem_x509_certificate((self.base / "clients" / name / "cert.pem").read_bytes())
        return cert.fingerprint(hashes.SHA256()).hex().upper()

    def context(self, name: str | None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.directory / "client-ca.pem"))
        ctx.check_hostname = False
        if name:
            client = self.base / "clients" / name
            ctx.load_cert_chain(str(client / "fullchain.pem"), str(client / "key.pem"))
        return ctx

    def connect(self, name: str | None) -> "Connection":
        return Connection(self.port, self.context(name))

    def request(self, name: str | None, target: str, method: str = "GET", headers: str = "") -> "Reply":
        """One request on its own connection, the target sent exactly as given."""
        with self.connect(name) as connection:
            return connection.send(target, method, headers)

    def close(self) -> None:
        for process in reversed(self.processes):
            (process.close if hasattr(process, "close") else process.stop)()
        self.echo.close()
        shutil.rmtree(self.base, ignore_errors=True)


class Reply:
    def __init__(self, status: int, head: str, body: bytes) -> None:
        self.status, self.head, self.body = status, head, body

    def json(self) -> dict:
        return json.loads(self.body)

    def header(self, name: str) -> list[str]:
        """What the upstream received in field ``name`` (any case), every copy."""
        return [v for k, v in self.json()["headers"] if k.lower() == name.lower()]

    def __repr__(self) -> str:
        return f"Reply({self.status}, {self.body[:200]!r})"


class Connection:
    """A kept-alive TLS connection sending raw HTTP/1.1 requests."""

    def __init__(self, port: int, ctx: ssl.SSLContext) -> None:
        self.tls = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10))
        self.buffer = b""

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc) -> None:
        self.tls.close()

    def send(self, target: str, method: str = "GET", headers: str = "") -> Reply:
        self.tls.sendall(f"{method} {target} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n".encode("latin-1"))
        return self._read(method)

    def _read(self, method: str) -> Reply:
        while b"\r\n\r\n" not in self.buffer:
            self._more()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        if method == "HEAD":
            return Reply(status, head.decode("latin-1"), b"")
        if fields.get("transfer-encoding") == "chunked":
            body = self._chunked()
        else:
            length = int(fields.get("content-length", "0"))
            while len(self.buffer) < length:
                self._more()
            body, self.buffer = self.buffer[:length], self.buffer[length:]
        return Reply(status, head.decode("latin-1"), body)

    def _chunked(self) -> bytes:
        body = b""
        while True:
            while b"\r\n" not in self.buffer:
                self._more()
            size_line, _, self.buffer = self.buffer.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            while len(self.buffer) < size + 2:
                self._more()
            body, self.buffer = body + self.buffer[:size], self.buffer[size + 2:]
            if size == 0:
                return body

    def _more(self) -> None:
        data = self.tls.recv(65536)
        if not data:
            raise ConnectionError("closed")
        self.buffer += data
