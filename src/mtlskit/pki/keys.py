"""Key types: generation, description and the strength policy. Pure; no I/O."""

from __future__ import annotations

import enum

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from mtlskit.errors import PolicyViolation
from mtlskit.pki.choices import Choice

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey


class KeyType(Choice):
    """The key types mtlskit generates; ``KeyType.parse("EC-P256")`` reads a CLI word."""

    what = enum.nonmember("key type")

    EC_P256 = "ec-p256"
    EC_P384 = "ec-p384"
    RSA_2048 = "rsa-2048"
    RSA_3072 = "rsa-3072"
    RSA_4096 = "rsa-4096"
    ED25519 = "ed25519"


_CURVES = {KeyType.EC_P256: ec.SECP256R1, KeyType.EC_P384: ec.SECP384R1}
_RSA_BITS = {KeyType.RSA_2048: 2048, KeyType.RSA_3072: 3072, KeyType.RSA_4096: 4096}
ACCEPTED_CURVES = {"secp256r1": 256, "secp384r1": 384}
MIN_RSA_BITS = 2048


def generate_private_key(key_type: KeyType) -> PrivateKey:
    if key_type in _CURVES:
        return ec.generate_private_key(_CURVES[key_type]())
    if key_type in _RSA_BITS:
        return rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS[key_type])
    return ed25519.Ed25519PrivateKey.generate()


def key_type_of(key) -> str:
    """A short name for any public or private key: ec-p256, rsa-2048, ed25519, ..."""
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        return {"secp256r1": "ec-p256", "secp384r1": "ec-p384", "secp521r1": "ec-p521"}.get(
            key.curve.name, f"ec-{key.curve.name}")
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return f"rsa-{key.key_size}"
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return "ed25519"
    return type(key).__name__.lower()


def describe_key(key) -> tuple[str, int]:
    """(algorithm, size in bits) for display: ("EC P-256", 256), ("RSA", 2048), ("Ed25519", 256)."""
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        label = {"secp256r1": "EC P-256", "secp384r1": "EC P-384", "secp521r1": "EC P-521"}
        return label.get(key.curve.name, f"EC {key.curve.name}"), key.curve.key_size
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return "RSA", key.key_size
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return "Ed25519", 256
    return type(key).__name__, 0


def check_key_strength(public_key) -> None:
    """Refuse what mtlskit will not certify: RSA < 2048, curves other than P-256/P-384,
    and any algorithm it does not know (DSA, X448, ...). Ed25519 is accepted.

    Raises:
        PolicyViolation: naming the key that was refused.
    """
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < MIN_RSA_BITS:
            raise PolicyViolation(f"RSA key of {public_key.key_size} bits refused: at least "
                                  f"{MIN_RSA_BITS} bits are required",
                                  hint="generate an EC P-256 key (openssl genpkey -algorithm EC "
                                       "-pkeyopt ec_paramgen_curve:P-256)")
        return
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if public_key.curve.name not in ACCEPTED_CURVES:
            raise PolicyViolation(f"elliptic curve {public_key.curve.name} refused: only "
                                  "P-256 (secp256r1) and P-384 (secp384r1) are accepted")
        return
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return
    raise PolicyViolation(f"key algorithm {type(public_key).__name__} refused: use EC P-256, "
                          "EC P-384, RSA 2048+ or Ed25519")


def signature_hash(private_key) -> hashes.HashAlgorithm | None:
    """The hash to sign with: SHA-384 for P-384, none for Ed25519, else SHA-256."""
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(private_key, ec.EllipticCurvePrivateKey) and private_key.curve.key_size >= 384:
        return hashes.SHA384()
    return hashes.SHA256()


def private_key_pem(private_key, password: bytes | None = None) -> bytes:
    """PKCS#8 PEM, encrypted with the best available scheme when a password is given."""
    encryption = (serialization.BestAvailableEncryption(password) if password
                  else serialization.NoEncryption())
    return private_key.private_bytes(serialization.Encoding.PEM,
                                     serialization.PrivateFormat.PKCS8, encryption)


def public_keys_match(private_key, public_key) -> bool:
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    return private_key.public_key().public_bytes(der, spki) == public_key.public_bytes(der, spki)
