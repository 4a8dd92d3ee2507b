"""Signing DER that mtlskit assembles itself (CRLs, multi-response OCSP). Pure; no I/O.

cryptography signs certificates, CSRs and single OCSP responses for us; for the
structures written by hand (:mod:`mtlskit.publish.crl`, :mod:`mtlskit.publish.ocsp`)
this module gives the signature AlgorithmIdentifier and the arguments of a private
key's ``sign``. They return None for a key or hash they do not know, so each caller
can say in its own words what it could not sign. A CA key is only ever used by its
:class:`mtlskit.ca.signer.Signer`; ``signer()`` is for the OCSP responder's own key.
"""

from __future__ import annotations

from typing import Callable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from mtlskit.pki import der

# RFC 5758 §3.2: ECDSA identifiers have absent parameters; RFC 4055 §5: RSA PKCS#1 v1.5
# identifiers carry NULL parameters; RFC 8410 §3: Ed25519 has absent parameters.
_ECDSA = {"sha256": "1.2.840.10045.4.3.2", "sha384": "1.2.840.10045.4.3.3",
          "sha512": "1.2.840.10045.4.3.4"}
_RSA = {"sha256": "1.2.840.113549.1.1.11", "sha384": "1.2.840.113549.1.1.12",
        "sha512": "1.2.840.113549.1.1.13"}
_ED25519 = "1.3.101.112"


def algorithm_identifier(private_key, hash_algorithm: hashes.HashAlgorithm | None) -> bytes | None:
    """The DER AlgorithmIdentifier for signing with ``private_key`` and ``hash_algorithm``
    (ignored for Ed25519); None for other keys or hashes."""
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        return der.sequence(der.oid(_ED25519))
    name = hash_algorithm.name if hash_algorithm is not None else None
    if isinstance(private_key, ec.EllipticCurvePrivateKey) and name in _ECDSA:
        return der.sequence(der.oid(_ECDSA[name]))
    if isinstance(private_key, rsa.RSAPrivateKey) and name in _RSA:
        return der.sequence(der.oid(_RSA[name]), der.encode(der.NULL, b""))
    return None


def signature_arguments(private_key, hash_algorithm: hashes.HashAlgorithm | None) -> tuple | None:
    """What follows the data in ``private_key.sign(data, ...)`` for signatures under
    ``algorithm_identifier``: () for Ed25519, (ECDSA(hash),) or (PKCS1v15(), hash);
    None for other keys, or no hash for ECDSA/RSA. It only looks at the key's type: the
    CA's Signer calls ``sign`` itself (the key never leaves it)."""
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        return ()
    if hash_algorithm is None:
        return None
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        return (ec.ECDSA(hash_algorithm),)
    if isinstance(private_key, rsa.RSAPrivateKey):
        return (padding.PKCS1v15(), hash_algorithm)
    return None


def signer(private_key, hash_algorithm: hashes.HashAlgorithm | None) -> Callable[[bytes], bytes] | None:
    """A function returning the signature value over its argument as it goes in the BIT
    STRING (ECDSA: the DER Ecdsa-Sig-Value of RFC 3279 §2.2.3; RSA: PKCS#1 v1.5;
    Ed25519: the 64 raw bytes); None for other keys, or no hash for ECDSA/RSA. For keys
    that are not a CA's (the OCSP responder's); a CA key signs in its Signer.

    The algorithm is chosen here, once, not on every call: OCSP nonce responses are
    signed per request.
    """
    arguments = signature_arguments(private_key, hash_algorithm)
    if arguments is None:
        return None
    if not arguments:
        return private_key.sign
    return lambda data: private_key.sign(data, *arguments)
