"""Test PKI and judges for the OCSP tests: a CA built with cryptography, pkilint, openssl."""

from __future__ import annotations

import dataclasses
import datetime as dt
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mtlskit.publish.ocsp import ResponderKey
from mtlskit.publish.responder import build_responder_certificate

NOW = dt.datetime(2026, 11, 22, 6, 0, 0, tzinfo=dt.timezone.utc)


@dataclasses.dataclass
class TestCa:
    name: str
    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey

    def sign_certificate(self, builder: x509.CertificateBuilder) -> x509.Certificate:
        """What a Signer offers: the test CA signs a builder (build_responder_certificate)."""
        return builder.sign(self.private_key, hashes.SHA256())

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)


def make_ca(name: str, common_name: str, parent: TestCa | None = None, now: dt.datetime = NOW) -> TestCa:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    issuer_name = parent.certificate.subject if parent else subject
    signing_key = parent.private_key if parent else key
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=3650))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None if parent is None else 0), True)
               .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False))
    if parent:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(parent.private_key.public_key()), False)
    return TestCa(name, builder.sign(signing_key, hashes.SHA256()), key)


def make_leaf(ca: TestCa, common_name: str, now: dt.datetime = NOW, ocsp_url: str | None = None,
              client: bool = True) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    eku = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
               .issuer_name(ca.certificate.subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=365))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
               .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), True)
               .add_extension(x509.ExtendedKeyUsage([eku]), False)
               .add_extension(x509.SubjectAlternativeName([x509.DNSName(common_name)]), False))
    if ocsp_url:
        builder = builder.add_extension(x509.AuthorityInformationAccess([x509.AccessDescription(
            x509.oid.AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url))]), False)
    return builder.sign(ca.private_key, hashes.SHA256()), key


def make_responder(ca: TestCa, now: dt.datetime = NOW) -> ResponderKey:
    key = ec.generate_private_key(ec.SECP256R1())
    return ResponderKey(build_responder_certificate(ca, key.public_key(), now), key)


def request_der(cert: x509.Certificate, issuer: x509.Certificate, nonce: bytes | None = None,
                algorithm: hashes.HashAlgorithm | None = None) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, algorithm or hashes.SHA1())
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def pkilint_findings(response_der: bytes, severity: str = "WARNING") -> list[str]:
    """pkilint's RFC 6960 OCSP response linter, as `lint_ocsp_response` runs it."""
    from pkilint import loader, pkix
    from pkilint.pkix import extension, name
    from pkilint.pkix import ocsp as pkix_ocsp

    validator = pkix_ocsp.create_pkix_ocsp_response_validator_container(
        [pkix_ocsp.create_response_decoder(),
         pkix.create_attribute_decoder(name.ATTRIBUTE_TYPE_MAPPINGS),
         pkix.create_extension_decoder(extension.EXTENSION_MAPPINGS)], [])
    document = loader.RFC6960OCSPResponseDocumentLoader().load_der_document(response_der, "response")
    return _findings(validator.validate(document.root), severity)


def pkilint_cert_findings(certificate: x509.Certificate, severity: str = "WARNING") -> list[str]:
    """pkilint's RFC 5280 certificate linter, as `lint_pkix_cert` runs it."""
    from pkilint import loader
    from pkilint.pkix import certificate as pkix_certificate, extension, name

    validator = pkix_certificate.create_pkix_certificate_validator_container(
        pkix_certificate.create_decoding_validators(name.ATTRIBUTE_TYPE_MAPPINGS, extension.EXTENSION_MAPPINGS),
        [pkix_certificate.create_issuer_validator_container([]),
         pkix_certificate.create_validity_validator_container(),
         pkix_certificate.create_subject_validator_container([]),
         pkix_certificate.create_extensions_validator_container([]),
         pkix_certificate.create_spki_validator_container([])])
    document = loader.RFC5280CertificateDocumentLoader().load_der_document(
        certificate.public_bytes(serialization.Encoding.DER), "certificate")
    return _findings(validator.validate(document.root), severity)


def _findings(results, severity: str) -> list[str]:
    from pkilint.validation import ValidationFindingSeverity

    floor = ValidationFindingSeverity[severity]
    found = []
    for result in results:
        for finding in result.finding_descriptions:
            if finding.finding.severity <= floor:
                found.append(f"{finding.finding.severity}: {finding.finding.code} {finding.message or ''}")
    return found


def openssl(*args: str, input: bytes | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *args], input=input, capture_output=True, cwd=cwd, timeout=30)


def write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


# --- an inventory holding the test PKI --------------------------------------------------------

def record_for(issuer: str, certificate: x509.Certificate, name: str, profile: str = "client"):
    import hashlib

    from mtlskit.store.inventory import CertificateRecord

    return CertificateRecord(
        issuer=issuer, serial=certificate.serial_number, name=name,
        subject=certificate.subject.rfc4514_string(), sans=(f"DNS:{name}",), profile=profile,
        key_type="ec-p256", not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        fingerprint_sha256=hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest(),
        pem=certificate.public_bytes(serialization.Encoding.PEM).decode())


def revoke_in_inventory(inventory, issuer: str, serial: int, reason: str, at: dt.datetime) -> None:
    """Revoke the way the revocation workflow does (Inventory.mark_revoked: row update, audit
    event, change counter), in one transaction."""
    [record] = [r for r in inventory.by_serial(serial) if r.issuer == issuer]
    with inventory.transaction() as tx:
        assert inventory.mark_revoked(tx, [record], at, reason, at) == []


@dataclasses.dataclass
class OcspWorld:
    root: TestCa
    ca: TestCa
    leaves: dict[str, x509.Certificate]
    keys: dict
    inventory: object
    lookup: object
    source: object
    view: object
    app: object
    clock: object


def make_world(tmp_path: Path, refresh_seconds: float = 0, ocsp_url: str | None = None,
               database_url: str | None = None) -> OcspWorld:
    from mtlskit.api.app import ServiceView, create_app
    from mtlskit.clock import SystemClock
    from mtlskit.publish.ocsp_source import OcspSource, ServedCa
    from mtlskit.publish.ocsp_status import InventoryStatusLookup
    from mtlskit.store.inventory import Inventory

    now = dt.datetime.now(dt.timezone.utc)
    root = make_ca("root", "Test Root CA", now=now)
    ca = make_ca("intermediate", "Test Issuing CA", root, now=now)
    leaves, keys = {}, {}
    for name in ("alice", "bob", "carol"):
        leaves[name], keys[name] = make_leaf(ca, name, now=now, ocsp_url=ocsp_url)
    inventory = Inventory.open(database_url or f"sqlite:///{tmp_path / 'inventory.db'}")
    inventory.add_certificates([record_for("intermediate", c, n) for n, c in leaves.items()]
                               + [record_for("root", ca.certificate, "Test Issuing CA", "intermediate")], now)
    clock = SystemClock()
    lookup = InventoryStatusLookup(inventory)
    source = OcspSource([ServedCa(c.name, c.certificate, make_responder(c, now)) for c in (root, ca)],
                        lookup, clock, refresh_seconds=refresh_seconds)
    view = ServiceView(source, {"root": root.certificate, "intermediate": ca.certificate},
                       crl_der=_no_crl, clock=clock)
    return OcspWorld(root, ca, leaves, keys, inventory, lookup, source, view, create_app(view), clock)


def _no_crl(name: str) -> bytes:
    from mtlskit.errors import NotFound

    raise NotFound(f"no CRL published yet for {name}", hint="run `mtlskit crl`")


class AsgiClient:
    """A synchronous face on httpx's in-process ASGI transport (no sockets)."""

    def __init__(self, app) -> None:
        self.app = app

    def request(self, method: str, url: str, **kwargs):
        import asyncio

        import httpx

        async def go():
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                return await client.request(method, url, **kwargs)

        return asyncio.run(go())

    def get(self, url: str, **kwargs):
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs):
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs):
        return self.request("PUT", url, **kwargs)


# --- a real `mtlskit serve` -----------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def mtlskit_env() -> dict:
    import os
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("MTLSKIT_")}
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHON"] = sys.executable
    return env


class ServeProcess:
    """`python -m mtlskit serve` on 127.0.0.1:port, stopped by PID."""

    def __init__(self, home: Path, port: int, *extra: str, log: Path | None = None) -> None:
        import sys

        self.home, self.port = home, port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log or home / f"serve-{port}.log"
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "mtlskit", "--home", str(home), "serve", "--port", str(port), *extra],
                stdout=out, stderr=subprocess.STDOUT, env=mtlskit_env())
        self._wait_ready()

    def _wait_ready(self, timeout: float = 20) -> None:
        import time
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mtlskit serve exited: {self.log.read_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"mtlskit serve did not answer: {self.log.read_text()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def mtlskit_cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    """`python -m mtlskit --home HOME ARGS` in its own process (not the server's)."""
    import sys

    return subprocess.run([sys.executable, "-m", "mtlskit", "--home", str(home), *args],
                          capture_output=True, env=mtlskit_env(), timeout=60)
