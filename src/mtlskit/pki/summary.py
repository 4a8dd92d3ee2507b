"""Plain-data summaries of certificates, CSRs, CRLs and keys (for `inspect`, `show`). Pure."""

from __future__ import annotations

import datetime as dt
import warnings

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.utils import CryptographyDeprecationWarning

from mtlskit.pki.keys import describe_key
from mtlskit.pki.names import general_name_text, sans_of

_KU_FIELDS = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
              "key_agreement", "key_cert_sign", "crl_sign")


def _key(public_key) -> dict:
    algorithm, bits = describe_key(public_key)
    return {"algorithm": algorithm, "bits": bits}


def _key_usage(extensions: x509.Extensions) -> list[str]:
    try:
        usage = extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return []
    return [f for f in _KU_FIELDS if getattr(usage, f)]


def _eku(extensions: x509.Extensions) -> list[str]:
    try:
        usages = extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return []
    return [getattr(oid, "_name", None) or oid.dotted_string for oid in usages]


def _basic_constraints(extensions: x509.Extensions) -> dict | None:
    try:
        value = extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return None
    return {"ca": value.ca, "path_length": value.path_length}


def _serial(certificate: x509.Certificate) -> int:
    """The serial, without cryptography's warning for one that is not positive (RFC 5280
    4.1.2.2 says it must be; `inspect` shows such a certificate rather than a warning)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        return certificate.serial_number


def certificate_summary(certificate: x509.Certificate, now: dt.datetime) -> dict:
    not_after = certificate.not_valid_after_utc
    return {
        "type": "certificate",
        "subject": certificate.subject.rfc4514_string(),
        "issuer": certificate.issuer.rfc4514_string(),
        "serial": format(_serial(certificate), "x"),
        "sans": [general_name_text(n) for n in sans_of(certificate)],
        "key": _key(certificate.public_key()),
        "key_usage": _key_usage(certificate.extensions),
        "extended_key_usage": _eku(certificate.extensions),
        "basic_constraints": _basic_constraints(certificate.extensions),
        "not_before": certificate.not_valid_before_utc.isoformat(),
        "not_after": not_after.isoformat(),
        "days_left": (not_after - now).days,
        "expired": not_after <= now,
        "self_signed": certificate.issuer == certificate.subject,
        "signature_algorithm": getattr(certificate.signature_algorithm_oid, "_name", "unknown"),
        "fingerprint_sha256": certificate.fingerprint(hashes.SHA256()).hex(),
    }


def csr_summary(csr: x509.CertificateSigningRequest) -> dict:
    return {
        "type": "csr",
        "subject": csr.subject.rfc4514_string(),
        "sans": [general_name_text(n) for n in sans_of(csr)],
        "key": _key(csr.public_key()),
        "signature_valid": csr.is_signature_valid,
        "requested_key_usage": _key_usage(csr.extensions),
        "requested_extended_key_usage": _eku(csr.extensions),
    }


def crl_summary(crl: x509.CertificateRevocationList, now: dt.datetime) -> dict:
    try:
        number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        number = None
    next_update = crl.next_update_utc
    return {
        "type": "crl",
        "issuer": crl.issuer.rfc4514_string(),
        "crl_number": number,
        "this_update": crl.last_update_utc.isoformat(),
        "next_update": next_update.isoformat() if next_update else None,
        "stale": bool(next_update and next_update <= now),
        "revoked_count": len(crl),
        "revoked": [{"serial": format(r.serial_number, "x"),
                     "revoked_at": r.revocation_date_utc.isoformat()} for r in list(crl)[:50]],
    }


def key_summary(key, private: bool) -> dict:
    public_key = key.public_key() if private else key
    spki = public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(spki)
    return {"type": "private-key" if private else "public-key", "key": _key(public_key),
            "spki_sha256": digest.finalize().hex()}
