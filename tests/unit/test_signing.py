"""mtlskit.pki.signing: the AlgorithmIdentifier of hand-built DER is the one cryptography
writes on a certificate signed with the same key, and the signatures verify."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, padding
from cryptography.hazmat.primitives.serialization import Encoding

from mtlskit.pki import der, signing
from tests.support_crl import hash_for, make_ca


@pytest.mark.parametrize("kind", ["ec-p256", "ec-p384", "rsa-2048", "ed25519"])
def test_identifier_and_signature_match_cryptography(kind):
    cert, key = make_ca(kind)
    encoded = cert.public_bytes(Encoding.DER)
    _, start, _ = der.read_tlv(encoded)                      # Certificate
    _, _, tbs_end = der.read_tlv(encoded, start)             # tbsCertificate
    _, _, algorithm_end = der.read_tlv(encoded, tbs_end)     # signatureAlgorithm
    assert signing.algorithm_identifier(key, hash_for(key)) == encoded[tbs_end:algorithm_end]

    signature = signing.signer(key, hash_for(key))(b"data")
    public = key.public_key()
    if kind.startswith("ec"):
        public.verify(signature, b"data", ec.ECDSA(hash_for(key)))
    elif kind.startswith("rsa"):
        public.verify(signature, b"data", padding.PKCS1v15(), hash_for(key))
    else:
        public.verify(signature, b"data")


def test_unknown_keys_and_hashes_are_none():
    other = ed448.Ed448PrivateKey.generate()
    assert signing.algorithm_identifier(other, hashes.SHA256()) is None
    assert signing.signer(other, hashes.SHA256()) is None
    _, ec_key = make_ca("ec-p256")
    assert signing.algorithm_identifier(ec_key, hashes.SHA224()) is None
    assert signing.signer(ec_key, None) is None
