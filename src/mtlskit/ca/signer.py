"""The authority's keys behind one small interface.

A Signer holds a CA certificate and a private-key object that cryptography's builders
accept. A PKCS#11 key is a subclass of cryptography's private-key class whose ``sign()``
calls the token, so every builder works unchanged; the key never leaves the Signer.
"""

from __future__ import annotations

import dataclasses

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from mtlskit.pki.keys import signature_hash


@dataclasses.dataclass(frozen=True)
class Signer:
    name: str                      # "root" or "intermediate": the CA's name in the inventory
    certificate: x509.Certificate
    private_key: object            # a cryptography private key (or a token-backed subclass)

    @property
    def hash_algorithm(self) -> hashes.HashAlgorithm | None:
        return signature_hash(self.private_key)

    def sign_certificate(self, builder: x509.CertificateBuilder) -> x509.Certificate:
        return builder.sign(self.private_key, self.hash_algorithm)

    def sign_crl(self, builder: x509.CertificateRevocationListBuilder) -> x509.CertificateRevocationList:
        return builder.sign(self.private_key, self.hash_algorithm)
