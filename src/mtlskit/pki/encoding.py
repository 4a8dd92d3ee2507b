"""Reading what users hand us: PEM or DER, certificates, CSRs, CRLs, keys, PKCS#12. Pure."""

from __future__ import annotations

import dataclasses
import enum
import functools
import warnings

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from mtlskit.errors import BadInput


class Kind(str, enum.Enum):
    CERTIFICATE = "certificate"
    CSR = "csr"
    CRL = "crl"
    PRIVATE_KEY = "private-key"
    PUBLIC_KEY = "public-key"
    PKCS12 = "pkcs12"


@dataclasses.dataclass(frozen=True)
class Loaded:
    kind: Kind
    objects: list  # certificates, a CSR, a CRL, a key, or the PKCS12KeyAndCertificates


# What cryptography raises for a file it cannot read: ValueError, and for a damaged
# version or key kind two exceptions that are not ValueErrors.
_UNREADABLE = (ValueError, UnsupportedAlgorithm, x509.InvalidVersion)


def _quietly(read):
    """``read`` without cryptography's warnings, which would reach the user's terminal:
    about what it reads but dislikes (a serial that is not positive) and its BER fallback."""
    @functools.wraps(read)
    def quiet(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return read(*args, **kwargs)
    return quiet


def is_pem(data: bytes) -> bool:
    return b"-----BEGIN " in data


@_quietly
def load_certificates(data: bytes) -> list[x509.Certificate]:
    """Every certificate in a PEM file (or the one DER certificate)."""
    try:
        return x509.load_pem_x509_certificates(data) if is_pem(data) else [x509.load_der_x509_certificate(data)]
    except _UNREADABLE:
        raise BadInput("not a certificate (PEM or DER)") from None


@_quietly
def load_csr(data: bytes) -> x509.CertificateSigningRequest:
    """A CSR whose public key can be read (cryptography reads it lazily: a damaged or
    unknown key would otherwise raise later, at the signature check)."""
    try:
        csr = x509.load_pem_x509_csr(data) if is_pem(data) else x509.load_der_x509_csr(data)
    except _UNREADABLE:
        raise BadInput("not a certificate signing request (PEM or DER)") from None
    try:
        csr.public_key()
    except _UNREADABLE:
        raise BadInput("the CSR's public key is damaged or of an unsupported kind") from None
    return csr


def load_private_key(data: bytes, password: bytes | None = None):
    try:
        if is_pem(data):
            return serialization.load_pem_private_key(data, password=password)
        return serialization.load_der_private_key(data, password=password)
    except TypeError:
        raise BadInput("the private key is encrypted", hint="give its password with --password-file") from None
    except _UNREADABLE:
        raise BadInput("not a private key (PEM or DER), or a wrong password") from None


@_quietly
def detect(data: bytes, password: bytes | None = None) -> Loaded:
    """Guess what `data` is; used by `mtlskit inspect`.

    Raises:
        BadInput: none of the known formats reads it.
    """
    if is_pem(data):
        return _detect_pem(data, password)
    for kind, loader in ((Kind.CERTIFICATE, lambda d: [x509.load_der_x509_certificate(d)]),
                         (Kind.CSR, lambda d: [x509.load_der_x509_csr(d)]),
                         (Kind.CRL, lambda d: [x509.load_der_x509_crl(d)]),
                         (Kind.PRIVATE_KEY, lambda d: [serialization.load_der_private_key(d, None)]),
                         (Kind.PUBLIC_KEY, lambda d: [serialization.load_der_public_key(d)])):
        try:
            return Loaded(kind, loader(data))
        except (TypeError, *_UNREADABLE):
            continue
    try:
        return Loaded(Kind.PKCS12, [pkcs12.load_pkcs12(data, password)])
    except _UNREADABLE as exc:
        if _looks_like_pkcs12(data):
            raise BadInput("a PKCS#12 bundle that this password does not open",
                           hint="give its password with --password-file") from exc
    raise BadInput("unrecognised file: not a certificate, CSR, CRL, key or PKCS#12 (PEM or DER)")


def _looks_like_pkcs12(data: bytes) -> bool:
    # PFX ::= SEQUENCE { version INTEGER (3), ... } (RFC 7292 section 4)
    return len(data) > 8 and data[0] == 0x30 and b"\x02\x01\x03" in data[:8]


_PEM_KINDS = (
    (b"CERTIFICATE REQUEST", Kind.CSR, lambda d, p: [x509.load_pem_x509_csr(d)]),
    (b"X509 CRL", Kind.CRL, lambda d, p: [x509.load_pem_x509_crl(d)]),
    (b"CERTIFICATE", Kind.CERTIFICATE, lambda d, p: x509.load_pem_x509_certificates(d)),
    (b"PRIVATE KEY", Kind.PRIVATE_KEY, lambda d, p: [serialization.load_pem_private_key(d, p)]),
    (b"PUBLIC KEY", Kind.PUBLIC_KEY, lambda d, p: [serialization.load_pem_public_key(d)]),
)


def _detect_pem(data: bytes, password: bytes | None) -> Loaded:
    first = data[data.index(b"-----BEGIN "):].split(b"\n", 1)[0]
    for marker, kind, loader in _PEM_KINDS:
        if marker in first:
            try:
                return Loaded(kind, loader(data, password))
            except TypeError:
                raise BadInput("the private key is encrypted",
                               hint="give its password with --password-file") from None
            except _UNREADABLE:
                raise BadInput(f"damaged PEM {kind.value}") from None
    raise BadInput(f"unsupported PEM block: {first.decode(errors='replace').strip('-')}")
