"""The authority's keys behind one small interface.

A Signer holds a CA certificate and a private-key object that cryptography's builders
accept. A PKCS#11 key is a subclass of cryptography's private-key class whose ``sign()``
calls the token, so every builder works unchanged.

The Signer is the only code that touches a CA private key: it has no public attribute
for it. Everything that signs for a CA goes through one of its methods —
``sign_certificate`` and ``sign_crl`` for cryptography's builders, ``sign_bytes`` for
the DER mtlskit assembles itself (leaf certificates, CRLs), with
``signature_algorithm`` the AlgorithmIdentifier those signatures go under — and
``private_key_pem`` is for :mod:`mtlskit.ca.home`, which stores the key encrypted.
A test (tests/security/test_signer_only.py) holds every module outside ``ca/`` to it.
"""

from __future__ import annotations

import dataclasses
import functools
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from mtlskit.errors import BadInput
from mtlskit.pki import signing
from mtlskit.pki.keys import private_key_pem, signature_hash


@dataclasses.dataclass(frozen=True)
class Signer:
    """One CA: its name in the inventory ("root" or "intermediate"), its certificate and,
    out of reach, its private key (a cryptography key or a token-backed subclass)."""

    name: str
    certificate: x509.Certificate
    _key: object = dataclasses.field(repr=False, compare=False)

    @property
    def hash_algorithm(self) -> hashes.HashAlgorithm | None:
        return signature_hash(self._key)

    @functools.cached_property
    def signature_algorithm(self) -> bytes | None:
        """The DER AlgorithmIdentifier of ``sign_bytes`` signatures; None when this key
        or hash has none in :mod:`mtlskit.pki.signing` (then only the builders sign)."""
        return signing.algorithm_identifier(self._key, self.hash_algorithm)

    @functools.cached_property
    def _sign_arguments(self) -> tuple | None:
        # chosen once: a batch signs thousands of leaves with them
        if self.signature_algorithm is None:
            return None
        return signing.signature_arguments(self._key, self.hash_algorithm)

    def public_key(self):
        return self._key.public_key()

    def sign_certificate(self, builder: x509.CertificateBuilder) -> x509.Certificate:
        return builder.sign(self._key, self.hash_algorithm)

    def sign_crl(self, builder: x509.CertificateRevocationListBuilder) -> x509.CertificateRevocationList:
        return builder.sign(self._key, self.hash_algorithm)

    def sign_bytes(self, data: bytes) -> bytes:
        """The signature value over ``data`` (a DER TBSCertificate or TBSCertList) as it
        goes in the BIT STRING, under ``signature_algorithm``.

        Raises:
            BadInput: a key or hash with no ``signature_algorithm``.
        """
        arguments = self._sign_arguments
        if arguments is None:
            name = self.hash_algorithm.name if self.hash_algorithm is not None else None
            raise BadInput(f"cannot sign DER with a {type(self._key).__name__} and hash {name}")
        return self._key.sign(data, *arguments)

    def private_key_pem(self, passphrase: bytes | None) -> bytes:
        """The key as PKCS#8 PEM, encrypted unless ``passphrase`` is None: for the CA home only."""
        return private_key_pem(self._key, passphrase)
