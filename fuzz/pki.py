"""A small test PKI for the fuzz targets (made fresh in each process, never written)."""

from __future__ import annotations

import datetime as dt
import functools

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mtlskit.publish.ocsp import ResponderKey
from mtlskit.publish.responder import build_responder_certificate

NOW = dt.datetime(2026, 11, 22, 6, 0, 0, tzinfo=dt.timezone.utc)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def certificate(subject: str, key, issuer: tuple[x509.Name, object] | None = None, ca: bool = False,
                serial: int | None = None, sans: tuple[str, ...] = ()) -> x509.Certificate:
    issuer_name, issuer_key = issuer or (_name(subject), key)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer_name)
               .public_key(key.public_key()).serial_number(serial or x509.random_serial_number())
               .not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(NOW + dt.timedelta(days=365))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), True))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in sans]), False)
    return builder.sign(issuer_key, hashes.SHA256())


@functools.cache
def ca() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    return certificate("Fuzz Issuing CA", key, ca=True), key


@functools.cache
def leaves() -> tuple[x509.Certificate, ...]:
    issuer, issuer_key = ca()
    found = [certificate(f"leaf{i}.example", ec.generate_private_key(ec.SECP256R1()), (issuer.subject, issuer_key),
                         serial=serial) for i, serial in enumerate((1, 0x7F, 0x80, 2 ** 159 - 1))]
    return tuple(found)


class _CaSigner:
    """What build_responder_certificate needs of the CA's Signer: its certificate, and a
    builder signed with its key."""

    def __init__(self, certificate: x509.Certificate, key) -> None:
        self.certificate, self._key = certificate, key

    def sign_certificate(self, builder: x509.CertificateBuilder) -> x509.Certificate:
        return builder.sign(self._key, hashes.SHA256())


@functools.cache
def responder() -> ResponderKey:
    key = ec.generate_private_key(ec.SECP256R1())
    return ResponderKey(build_responder_certificate(_CaSigner(*ca()), key.public_key(), NOW), key)


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)
