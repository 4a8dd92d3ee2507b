"""Leaf certificates assembled from DER parts (RFC 5280 §4.1). Pure; no I/O.

Batch issuance signs thousands of leaves of one profile and issuer that differ only in
serial, subject, public key, keyUsage, subjectKeyIdentifier and subjectAltName. A
:class:`LeafLayout` encodes everything else once (version, signature algorithm, issuer,
validity and the leading extensions) and splices the per-certificate parts in, instead
of going through a certificate builder for each one.

The caller (:class:`mtlskit.issue.issuer.LeafTemplate`) hands in each part already
encoded, by cryptography where it has an encoder (names, extension values, the
SubjectPublicKeyInfo), so the TBSCertificate is byte for byte the one cryptography's
``CertificateBuilder`` writes for the same inputs; the unit tests hold it to that.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Sequence

from mtlskit.pki import der

# TBSCertificate.version: [0] EXPLICIT Version, v3 (2) since the certificate has
# extensions (RFC 5280 §4.1.2.1).
VERSION_3 = der.encode(der.context(0), der.integer(2))
SUBJECT_KEY_IDENTIFIER = "2.5.29.14"
KEY_USAGE = "2.5.29.15"
SUBJECT_ALT_NAME = "2.5.29.17"

# A subjectKeyIdentifier is a 20-byte SHA-1: its extension is a constant prefix + digest.
_SKI_PREFIX = der.extension(SUBJECT_KEY_IDENTIFIER, der.encode(der.OCTET_STRING, bytes(20)))[:-20]


class LeafLayout:
    """The parts of a TBSCertificate shared by every leaf of one template.

    Args:
        signature_algorithm: the DER AlgorithmIdentifier the issuer signs with
            (:func:`mtlskit.pki.signing.algorithm_identifier`).
        issuer: the DER Name of the issuing CA (its certificate's subject).
        not_before, not_after: the validity (aware datetimes; seconds are kept,
            fractions dropped, as RFC 5280 §4.1.2.5 requires).
        leading_extensions: encoded Extensions that come first, in order, on every leaf.
    """

    def __init__(self, signature_algorithm: bytes, issuer: bytes, not_before: dt.datetime,
                 not_after: dt.datetime, leading_extensions: Sequence[bytes]) -> None:
        self.signature_algorithm = signature_algorithm
        validity = der.sequence(der.x509_time(not_before), der.x509_time(not_after))
        self._after_serial = signature_algorithm + issuer + validity
        self._leading = b"".join(leading_extensions)

    def tbs_certificate(self, serial: int, subject: bytes, spki: bytes,
                        trailing_extensions: Sequence[bytes]) -> bytes:
        """The DER TBSCertificate (RFC 5280 §4.1.1.1) of one leaf.

        Args:
            serial: the positive serial number.
            subject: the DER Name of the subject.
            spki: the DER SubjectPublicKeyInfo of the leaf's key.
            trailing_extensions: encoded Extensions after the leading ones, in order.
        """
        extensions = der.sequence(self._leading, *trailing_extensions)
        return der.sequence(VERSION_3, der.integer(serial), self._after_serial, subject, spki,
                            der.encode(der.context(3), extensions))

    def certificate(self, tbs_certificate: bytes, signature: bytes) -> bytes:
        """The DER Certificate: the TBSCertificate, the algorithm again and the signature
        value as a BIT STRING with no unused bits (RFC 5280 §4.1.1.2, §4.1.1.3)."""
        return der.sequence(tbs_certificate, self.signature_algorithm,
                            der.encode(der.BIT_STRING, b"\x00" + signature))


def subject_public_key(spki: bytes) -> bytes:
    """The subjectPublicKey bits of a DER SubjectPublicKeyInfo (RFC 5280 §4.1.2.7).

    Raises:
        BadInput: not a SubjectPublicKeyInfo.
    """
    start, end = der.expect(spki, 0, der.SEQUENCE)
    _, _, algorithm_end = der.read_tlv(spki, start, end)
    bits_start, bits_end = der.expect(spki, algorithm_end, der.BIT_STRING, end)
    return spki[bits_start + 1:bits_end]  # after the unused-bits octet (always 0 for keys)


def subject_key_identifier(spki: bytes) -> bytes:
    """The subjectKeyIdentifier extension whose keyIdentifier is the SHA-1 of the
    subjectPublicKey bits (RFC 5280 §4.2.1.2, method 1: what cryptography's
    ``SubjectKeyIdentifier.from_public_key`` computes)."""
    return _SKI_PREFIX + hashlib.sha1(subject_public_key(spki)).digest()


def subject_alt_name(general_names: bytes) -> bytes:
    """The subjectAltName extension (RFC 5280 §4.2.1.6) around a DER GeneralNames. Not
    critical: mtlskit leaves always have a subject."""
    return der.extension(SUBJECT_ALT_NAME, general_names)
