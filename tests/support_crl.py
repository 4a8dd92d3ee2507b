"""Test helpers for the revocation/CRL area: throw-away CAs built with cryptography and
the independent judges (pkilint's PKIX CRL linter, openssl)."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

NOW = dt.datetime(2026, 11, 22, 6, 0, 0, tzinfo=dt.timezone.utc)


def make_key(kind: str):
    if kind == "ec-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ec-p384":
        return ec.generate_private_key(ec.SECP384R1())
    if kind == "rsa-2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(kind)


def hash_for(key):
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size >= 384:
        return hashes.SHA384()
    return hashes.SHA256()


def make_ca(kind: str = "ec-p256", name: str = "Test CA", issuer=None, issuer_key=None):
    """A CA certificate (self-signed unless issuer/issuer_key given) and its key."""
    key = make_key(kind)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    signing_key = issuer_key or key
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    issuer_ski = x509.SubjectKeyIdentifier.from_public_key(signing_key.public_key())
    cert = (x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer.subject if issuer is not None else subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(days=1))
            .not_valid_after(NOW + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(ski, critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski),
                           critical=False)
            .sign(signing_key, hash_for(signing_key)))
    return cert, key


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def pkilint_crl_findings(der: bytes, threshold: str = "WARNING") -> list[str]:
    """Findings at or above ``threshold`` from pkilint's PKIX CRL linter (what its
    `lint_crl lint -t CRL -p PKIX` command runs)."""
    from pkilint import loader, pkix
    from pkilint.pkix import crl, extension, name
    from pkilint.validation import ValidationFindingSeverity

    validator = crl.create_pkix_crl_validator_container(
        [pkix.create_attribute_decoder(name.ATTRIBUTE_TYPE_MAPPINGS),
         pkix.create_extension_decoder(extension.EXTENSION_MAPPINGS)],
        [crl.create_issuer_validator_container([]),
         crl.create_validity_validator_container([]),
         crl.create_extensions_validator_container([])],
    )
    document = loader.RFC5280CertificateListDocumentLoader().load_der_document(der, "crl")
    limit = ValidationFindingSeverity[threshold]
    return [f"{result.validator} @ {result.node.path}: {description}"
            for result in validator.validate(document.root)
            for description in result.finding_descriptions
            if description.finding.severity <= limit]


def openssl(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, cwd=cwd, timeout=120)


# --- CA homes made with the real CLI, in-process --------------------------------------

def cli(home: Path, *args: str) -> int:
    from mtlskit.cli.app import main
    return main(["--home", str(home), *args])


def make_home(root: Path, *init_args: str) -> Path:
    """A fresh CA home (no passphrase unless init_args say otherwise)."""
    home = root / "home"
    args = init_args or ("--no-passphrase",)
    assert cli(home, "init", *args) == 0
    return home


def issue(home: Path, profile: str, name: str, out: Path, *args: str) -> Path:
    """Issue one certificate into out/<name>-<n>/ and return that directory."""
    n = 0
    while (out / f"{name}-{n}").exists():
        n += 1
    target = out / f"{name}-{n}"
    assert cli(home, "issue", profile, name, "--out", str(target), *args) == 0
    return target


def serial_of(bundle_dir: Path) -> int:
    cert = x509.load_pem_x509_certificate((bundle_dir / "cert.pem").read_bytes())
    return cert.serial_number


def open_service(home: Path, clock=None):
    from mtlskit.config import load_settings
    from mtlskit.service import Service
    return Service.open(load_settings(home), clock)


def no_passphrase():
    return None
