"""Helpers for the tests of `serve --tls-port`, enrollment and remote renewal: a real
`mtlskit serve` process, tokens, and raw HTTPS requests with or without a client certificate."""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import ssl
import subprocess
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support_ocsp import REPO, ServeProcess, free_port, mtlskit_cli, mtlskit_env


class TlsServe:
    """`mtlskit serve --port P --tls-port T` on 127.0.0.1 for one CA home."""

    def __init__(self, root: Path, *extra: str) -> None:
        self.home = root / "home"
        assert mtlskit_cli(self.home, "init", "--name", "Enroll Test CA", "--no-passphrase").returncode == 0
        self.tls_port = free_port()
        self.server = ServeProcess(self.home, free_port(), "--tls-port", str(self.tls_port), *extra)
        self.url = f"https://127.0.0.1:{self.tls_port}"
        self.root_pem = (self.home / "ca" / "root.pem").read_bytes()
        root = x509.load_pem_x509_certificate(self.root_pem)
        self.fingerprint = root.fingerprint(hashes.SHA256()).hex()

    def stop(self) -> None:
        self.server.stop()

    def log(self) -> str:
        return self.server.log.read_text(errors="replace")

    def token(self, name: str, *args: str) -> str:
        result = mtlskit_cli(self.home, "token", "create", name, *args)
        assert result.returncode == 0, result.stderr.decode()
        return result.stdout.decode().splitlines()[-1]

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return mtlskit_cli(self.home, *args)

    def expired_token(self, name: str, profile: str = "client") -> str:
        """A token created an hour ago for 15 minutes (through the library, with a fixed clock)."""
        from mtlskit.clock import FixedClock
        from mtlskit.config import load_settings
        from mtlskit.lifecycle.tokens import TokenGrant, create_token
        from mtlskit.service import Service

        clock = FixedClock(dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1))
        service = Service.open(load_settings(self.home), clock)
        token, _ = create_token(service, TokenGrant(name, profile), dt.timedelta(minutes=15))
        return token

    def context(self, client_dir: Path | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context(cadata=self.root_pem.decode())
        if client_dir is not None:
            context.load_cert_chain(client_dir / "fullchain.pem", client_dir / "key.pem")
        return context

    def post(self, path: str, body: bytes | dict, client_dir: Path | None = None,
             headers: dict | None = None) -> tuple[int, dict]:
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        connection = http.client.HTTPSConnection("127.0.0.1", self.tls_port, context=self.context(client_dir),
                                                 timeout=30)
        try:
            connection.request("POST", path, body=data,
                               headers={"Content-Type": "application/json", **(headers or {})})
            response = connection.getresponse()
            text = response.read()
        finally:
            connection.close()
        try:
            return response.status, json.loads(text)
        except ValueError:
            return response.status, {"raw": text.decode(errors="replace")}


def enroll_cli(serve: TlsServe, token: str, out: Path, fingerprint: str | None = None,
               url: str | None = None) -> subprocess.CompletedProcess:
    """`mtlskit enroll` in its own process, the token from a 0600 file (never in argv)."""
    token_file = out.parent / f"{out.name}.token"
    fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    return subprocess.run([sys.executable, "-m", "mtlskit", "enroll", "--ca-url", url or serve.url,
                           "--token-file", str(token_file), "--fingerprint", fingerprint or serve.fingerprint,
                           "--out", str(out)], capture_output=True, env=mtlskit_env(), timeout=60, cwd=REPO)


def csr_pem(common_name: str | None = None, dns: tuple[str, ...] = ()) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, common_name)] if common_name else [])
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if dns:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()
