"""Pure CRL building (RFC 5280 section 5) with a fast path for very large CRLs.

cryptography's ``CertificateRevocationListBuilder`` builds one Python object per
revoked certificate and takes tens of seconds for a million entries. A CRL is simple
DER, so this module writes it directly:

* ``encode_entry()`` encodes one ``revokedCertificates`` element (RFC 5280 5.1.2.6).
  Each entry is encoded once, when the certificate is revoked, and its bytes are kept
  (the revoker stores them in the inventory), so one more revocation encodes one entry.
* ``build_crl()`` concatenates the encoded entries into the TBSCertList (5.1.2), signs
  the TBS bytes with the CA's private key and assembles the CertificateList (5.1.1).

Everything here is pure: no files, no database. The result is DER bytes; callers load
it with ``x509.load_der_x509_crl`` when they need an object.
"""

from __future__ import annotations

import datetime as dt
from typing import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from mtlskit.errors import BadInput
from mtlskit.pki import der, signing
from mtlskit.pki.der import encode, header, integer, x509_time
from mtlskit.pki.extensions import authority_key_identifier

# --- reading a stored CRL back ------------------------------------------------------

_CRL_EXTENSIONS = der.context(0)  # crlExtensions [0] EXPLICIT (RFC 5280 5.1)


def _read(data: memoryview, offset: int) -> tuple[int, int, int]:
    """``der.read_tlv`` for CRLs read back from the store: a CRL that is not DER is a
    ``ValueError`` here, which tells the caller to rebuild it from the inventory."""
    try:
        return der.read_tlv(data, offset)
    except BadInput as error:
        raise ValueError(str(error)) from None


def _tbs_layout(crl_der: bytes | memoryview) -> tuple[memoryview, tuple[int, int] | None, int, int]:
    """Walk the TBSCertList without decoding entries: (view, (start, end) of the
    revokedCertificates content or None, offset after it, end of the TBS)."""
    view = memoryview(crl_der)
    tag, tbs_start, _ = _read(view, 0)           # CertificateList
    if tag != der.SEQUENCE:
        raise ValueError("not a CRL")
    tag, start, tbs_end = _read(view, tbs_start)  # TBSCertList
    if tag != der.SEQUENCE:
        raise ValueError("not a CRL")
    offset = start
    # version, signature, issuer, thisUpdate, then nextUpdate (a Time) if present
    for expected in (der.INTEGER, der.SEQUENCE, der.SEQUENCE, None):
        tag, _, offset_end = _read(view, offset)
        if expected is not None and tag != expected:
            raise ValueError("unexpected field in TBSCertList")
        offset = offset_end
    if offset < tbs_end and view[offset] in (der.UTC_TIME, der.GENERALIZED_TIME):
        offset = _read(view, offset)[2]
    revoked = None
    if offset < tbs_end and view[offset] == der.SEQUENCE:
        _, content_start, offset = _read(view, offset)
        revoked = (content_start, offset)
    return view, revoked, offset, tbs_end


def revoked_entries_content(crl_der: bytes) -> bytes:
    """The concatenated revokedCertificates elements of a CRL (b"" when it has none),
    ready to be extended with new entries and passed back to ``build_crl``."""
    view, revoked, _, _ = _tbs_layout(crl_der)
    return bytes(view[revoked[0]:revoked[1]]) if revoked else b""


def crl_number_of(crl_der: bytes) -> int | None:
    """The CRL number (RFC 5280 5.2.3) of a CRL, read without decoding its entries;
    None when it has no CRL number extension."""
    view, _, offset, tbs_end = _tbs_layout(crl_der)
    if offset >= tbs_end or view[offset] != _CRL_EXTENSIONS:
        return None
    _, start, _ = _read(view, offset)
    _, offset, extensions_end = _read(view, start)          # Extensions SEQUENCE
    wanted = der.oid(_OID_CRL_NUMBER)
    while offset < extensions_end:
        _, ext_start, ext_end = _read(view, offset)          # Extension
        _, _, oid_end = _read(view, ext_start)
        if bytes(view[ext_start:oid_end]) == wanted:
            value_offset = oid_end
            if view[value_offset] == der.BOOLEAN:
                value_offset = _read(view, value_offset)[2]
            _, value_start, _ = _read(view, value_offset)    # OCTET STRING
            _, int_start, int_end = _read(view, value_start)  # INTEGER
            return int.from_bytes(bytes(view[int_start:int_end]), "big", signed=True)
        offset = ext_end
    return None


# --- CRL entries (RFC 5280 5.1.2.6, 5.3.1) -------------------------------------------

_OID_CRL_REASON = "2.5.29.21"
_OID_CRL_NUMBER = "2.5.29.20"
_OID_AUTHORITY_KEY_IDENTIFIER = "2.5.29.35"

#: CRLReason codes of RFC 5280 5.3.1 (value 7 is not used).
REASON_CODES: dict[x509.ReasonFlags, int] = {
    x509.ReasonFlags.unspecified: 0,
    x509.ReasonFlags.key_compromise: 1,
    x509.ReasonFlags.ca_compromise: 2,
    x509.ReasonFlags.affiliation_changed: 3,
    x509.ReasonFlags.superseded: 4,
    x509.ReasonFlags.cessation_of_operation: 5,
    x509.ReasonFlags.certificate_hold: 6,
    x509.ReasonFlags.remove_from_crl: 8,
    x509.ReasonFlags.privilege_withdrawn: 9,
    x509.ReasonFlags.aa_compromise: 10,
}

# The reasonCode extension of every code, encoded once: the entry encoder is hot.
_REASON_EXTENSIONS: dict[x509.ReasonFlags, bytes] = {
    flag: encode(der.SEQUENCE, der.extension(_OID_CRL_REASON, encode(der.ENUMERATED, bytes((code,)))))
    for flag, code in REASON_CODES.items()
}


def encode_entry(serial: int, revoked_at: dt.datetime, reason: x509.ReasonFlags | None) -> bytes:
    """One element of revokedCertificates:

        SEQUENCE { userCertificate CertificateSerialNumber, revocationDate Time,
                   crlEntryExtensions Extensions OPTIONAL }

    The reasonCode extension is left out for ``unspecified`` (and None), as RFC 5280
    5.3.1 recommends ("the reason code extension SHOULD be absent instead of using the
    unspecified (0) reasonCode value").
    """
    if serial <= 0:
        raise ValueError("serial numbers are positive integers (RFC 5280 4.1.2.2)")
    return encode(der.SEQUENCE, integer(serial) + x509_time(revoked_at) + entry_extensions(reason))


def entry_extensions(reason: x509.ReasonFlags | None) -> bytes:
    """The encoded crlEntryExtensions of an entry revoked for ``reason``: the reasonCode
    extension (RFC 5280 5.3.1), or b"" for ``unspecified`` and None (absent)."""
    if reason is None or reason is x509.ReasonFlags.unspecified:
        return b""
    return _REASON_EXTENSIONS[reason]


# --- signature algorithms (mtlskit.pki.signing) ------------------------------------

def signature_algorithm(private_key, hash_algorithm: hashes.HashAlgorithm | None) -> bytes:
    """The DER AlgorithmIdentifier for signing with ``private_key`` and ``hash_algorithm``.

    Raises:
        BadInput: a key type or hash that CRLs of mtlskit are not signed with.
    """
    found = signing.algorithm_identifier(private_key, hash_algorithm)
    if found is None:
        name = hash_algorithm.name if hash_algorithm is not None else None
        raise BadInput(f"cannot sign a CRL with a {type(private_key).__name__} and hash {name}")
    return found


def sign(private_key, hash_algorithm: hashes.HashAlgorithm | None, data: bytes) -> bytes:
    """The signature value over ``data`` as it goes in the BIT STRING
    (``mtlskit.pki.signing.signer``)."""
    function = signing.signer(private_key, hash_algorithm)
    if function is None:
        raise BadInput(f"cannot sign a CRL with a {type(private_key).__name__}")
    return function(data)


# --- the CRL -------------------------------------------------------------------------

def build_tbs(issuer_certificate: x509.Certificate, algorithm_identifier: bytes,
              crl_number: int, this_update: dt.datetime, next_update: dt.datetime,
              entries: Sequence[bytes] | bytes) -> bytes:
    """TBSCertList (RFC 5280 5.1.2) of a full v2 CRL with CRL number and AKI.

    ``entries`` are encoded revokedCertificates elements (``encode_entry``), either as a
    sequence or already concatenated into one bytes object. The field is left out
    altogether when there are none (5.1.2.6: "the revoked certificates list MUST be
    absent").
    """
    if isinstance(entries, (bytes, bytearray, memoryview)):
        entries = [bytes(entries)] if entries else []
    if crl_number < 0 or crl_number.bit_length() > 159:
        raise ValueError("the CRL number is a non-negative integer of at most 20 octets (5.2.3)")
    if next_update <= this_update:
        raise ValueError("nextUpdate must be later than thisUpdate")
    aki = authority_key_identifier(issuer_certificate)
    extensions = (der.extension(_OID_AUTHORITY_KEY_IDENTIFIER, aki.public_bytes())
                  + der.extension(_OID_CRL_NUMBER, x509.CRLNumber(crl_number).public_bytes()))
    head = (integer(1)                                     # version v2 (5.1.2.1)
            + algorithm_identifier                             # signature (5.1.2.2)
            + issuer_certificate.subject.public_bytes()        # issuer (5.1.2.3)
            + x509_time(this_update) + x509_time(next_update))   # 5.1.2.4, 5.1.2.5
    tail = encode(_CRL_EXTENSIONS, encode(der.SEQUENCE, extensions))  # crlExtensions [0]
    parts = [head]
    entries_length = sum(map(len, entries))
    if entries_length:  # absent, not empty, when there are none (5.1.2.6)
        parts.append(header(der.SEQUENCE, entries_length))
        parts.extend(entries)
    parts.append(tail)
    content_length = sum(map(len, parts))
    return b"".join([header(der.SEQUENCE, content_length), *parts])


def build_crl(private_key, hash_algorithm: hashes.HashAlgorithm | None,
              issuer_certificate: x509.Certificate, crl_number: int,
              this_update: dt.datetime, next_update: dt.datetime,
              entries: Sequence[bytes] | bytes) -> bytes:
    """A signed CertificateList (RFC 5280 5.1.1) in DER.

    Args:
        private_key: the CA's private key (a cryptography key object; never leaves here).
        hash_algorithm: the digest to sign with (``mtlskit.pki.keys.signature_hash``).
        issuer_certificate: the CA certificate whose subject and key identify the issuer.
        crl_number: the monotonically increasing CRL number (5.2.3).
        this_update, next_update: aware datetimes (5.1.2.4, 5.1.2.5).
        entries: encoded revoked-certificate entries from ``encode_entry`` (a sequence,
            or their concatenation, e.g. ``revoked_entries_content(previous) + new``).
    """
    algorithm = signature_algorithm(private_key, hash_algorithm)
    tbs = build_tbs(issuer_certificate, algorithm, crl_number, this_update, next_update, entries)
    signature = encode(der.BIT_STRING, b"\x00" + sign(private_key, hash_algorithm, tbs))
    return b"".join([header(der.SEQUENCE, len(tbs) + len(algorithm) + len(signature)),
                     tbs, algorithm, signature])
