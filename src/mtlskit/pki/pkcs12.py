"""PKCS#12 bundles in two profiles (pure).

- modern: AES-256-CBC with PBKDF2 (PBES2) and a SHA-256 MAC — what OpenSSL 3 writes.
- legacy: pbeWithSHA1And3-KeyTripleDES-CBC for key and certificates, SHA-1 MAC — what
  iOS, macOS (Keychain) and older Windows import; they reject PBES2/AES bundles.
"""

from __future__ import annotations

import enum

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import PrivateFormat, pkcs12

from mtlskit.errors import BadInput
from mtlskit.pki.choices import Choice

KDF_ROUNDS = 2048  # OpenSSL's default PKCS12_DEFAULT_ITER


class P12Profile(Choice):
    """How a PKCS#12 file is encrypted: AES-256 + SHA-256 (modern) or 3DES + SHA-1 (legacy)."""

    what = enum.nonmember("PKCS#12 profile")
    hint = enum.nonmember("choose modern or legacy")

    MODERN = "modern"
    LEGACY = "legacy"


def _encryption(profile: P12Profile, password: bytes):
    builder = PrivateFormat.PKCS12.encryption_builder().kdf_rounds(KDF_ROUNDS)
    if profile is P12Profile.LEGACY:
        builder = builder.key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC) \
                         .hmac_hash(hashes.SHA1())
    else:
        builder = builder.key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC) \
                         .hmac_hash(hashes.SHA256())
    return builder.build(password)


def build_pkcs12(name: str, private_key, certificate: x509.Certificate,
                 chain: list[x509.Certificate], password: bytes,
                 profile: P12Profile = P12Profile.MODERN) -> bytes:
    """A password-protected bundle of key, certificate and chain, under friendly name `name`.

    Raises:
        BadInput: empty password (platforms refuse to import those, and it protects nothing).
    """
    if not password:
        raise BadInput("a PKCS#12 bundle needs a non-empty password")
    return pkcs12.serialize_key_and_certificates(
        name.encode(), private_key, certificate, chain or None, _encryption(profile, password))


def load_pkcs12(data: bytes, password: bytes | None):
    try:
        return pkcs12.load_pkcs12(data, password)
    except ValueError:
        raise BadInput("cannot open the PKCS#12 file: wrong password or not a PKCS#12 bundle") from None
