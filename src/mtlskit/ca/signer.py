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
from typing import Callable

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from mtlskit.errors import BadInput
from mtlskit.pki import signing
from mtlskit.pki.keys import private_key_pem, signature_hash


@dataclasses.dataclass(frozen=True)
class Signer:
    """One CA: its name in the inventory ("root", "intermediate", "intermediate-N"), its certificate and,
    out of reach, its private key (a cryptography key or a token-backed subclass).

    ``sign_bytes(data)`` is set per instance by ``__post_init__`` (``_signing_function``).
    """

    name: str
    certificate: x509.Certificate
    _key: object = dataclasses.field(repr=False, compare=False)

    @property
    def hash_algorithm(self) -> hashes.HashAlgorithm | None:
        return signature_hash(self._private_key())

    @functools.cached_property
    def signature_algorithm(self) -> bytes | None:
        """The DER AlgorithmIdentifier of ``sign_bytes`` signatures; None when this key
        or hash has none in :mod:`mtlskit.pki.signing` (then only the builders sign)."""
        return signing.algorithm_identifier(self._private_key(), self.hash_algorithm)

    def __post_init__(self) -> None:
        # sign_bytes is a function made once, not a method: a batch signs thousands of
        # leaves through it, and a method call would add ~0.4 µs to each ~15 µs signature
        if isinstance(self._key, DeferredKey):
            object.__setattr__(self, "sign_bytes", lambda data: self._loaded_signing_function()(data))
        else:
            object.__setattr__(self, "sign_bytes", self._signing_function())

    @property
    def key_loaded(self) -> bool:
        """False while the key is a DeferredKey not yet read (an offline root stays so)."""
        return not isinstance(self._key, DeferredKey)

    @property
    def key_present(self) -> bool:
        """Whether signing can work: the key was read, or it can be (its file is here)."""
        return self.key_loaded or self._key.present()

    def _private_key(self):
        """The key, read on first use when it was deferred (raises what the loader raises)."""
        if isinstance(self._key, DeferredKey):
            object.__setattr__(self, "_key", self._key.load())
            # from now on the direct function (batches take sign_bytes once, then call it)
            object.__setattr__(self, "sign_bytes", self._signing_function())
        return self._key

    def _loaded_signing_function(self) -> Callable[[bytes], bytes]:
        self._private_key()
        return self.sign_bytes

    def _signing_function(self) -> Callable[[bytes], bytes]:
        """``sign_bytes(data)``: the signature value over ``data`` (a DER TBSCertificate
        or TBSCertList) as it goes in the BIT STRING, under ``signature_algorithm``;
        it raises BadInput for a key or hash with no ``signature_algorithm``."""
        key = self._private_key()
        arguments = None
        if self.signature_algorithm is not None:
            arguments = signing.signature_arguments(key, self.hash_algorithm)
        if arguments is None:
            name = self.hash_algorithm.name if self.hash_algorithm is not None else None
            message = f"cannot sign DER with a {type(key).__name__} and hash {name}"

            def refuse(data: bytes) -> bytes:
                raise BadInput(message)
            return refuse
        if not arguments:  # Ed25519
            return lambda data: key.sign(data)
        if len(arguments) == 1:  # ECDSA
            (ecdsa,) = arguments
            return lambda data: key.sign(data, ecdsa)
        padding, hash_algorithm = arguments  # RSA PKCS#1 v1.5
        return lambda data: key.sign(data, padding, hash_algorithm)

    def public_key(self):
        if isinstance(self._key, DeferredKey):
            return self.certificate.public_key()  # the same key; no need to read the private one
        return self._key.public_key()

    def sign_certificate(self, builder: x509.CertificateBuilder) -> x509.Certificate:
        return builder.sign(self._private_key(), self.hash_algorithm)

    def sign_crl(self, builder: x509.CertificateRevocationListBuilder) -> x509.CertificateRevocationList:
        return builder.sign(self._private_key(), self.hash_algorithm)

    def private_key_pem(self, passphrase: bytes | None) -> bytes:
        """The key as PKCS#8 PEM, encrypted unless ``passphrase`` is None: for the CA home only.

        Raises:
            BadInput: the key is in a PKCS#11 token (it cannot leave it).
        """
        return private_key_pem(self._private_key(), passphrase)

    @property
    def token_reference(self):
        """Where in a PKCS#11 token the key is (a ``ca.pkcs11.KeyReference``); None for a file key."""
        if isinstance(self._key, DeferredKey) and self._key.reference is not None:
            return self._key.reference
        return getattr(self._private_key(), "reference", None)

    def new_ca_key(self, key_type, name: str):
        """A fresh key for the CA ``name`` that this one certifies, kept where this one's
        key is: a file key, or a new key in the same PKCS#11 token."""
        reference = self.token_reference
        if reference is None:
            from mtlskit.pki.keys import generate_private_key

            return generate_private_key(key_type)
        from mtlskit.ca import pkcs11

        return pkcs11.sibling_key(self._private_key(), key_type, reference.label.removesuffix(f"-{self.name}"), name)


class DeferredKey:
    """A CA key read only when something signs with it: ``load()`` returns the key or
    raises (the root's key may be kept off the machine; see :mod:`mtlskit.ca.home`)."""

    def __init__(self, load: Callable[[], object], present: Callable[[], bool] = lambda: True,
                 reference=None) -> None:
        self.load = load
        self.present = present
        self.reference = reference  # a ca.pkcs11.KeyReference when the key is in a token
