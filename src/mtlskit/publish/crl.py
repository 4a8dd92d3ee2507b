"""Pure CRL building (RFC 5280 section 5) with a fast path for very large CRLs.

cryptography's ``CertificateRevocationListBuilder`` builds one Python object per
revoked certificate and takes tens of seconds for a million entries. A CRL is simple
DER, so this module writes it directly:

* ``encode_entry()`` encodes one ``revokedCertificates`` element (RFC 5280 5.1.2.6).
  Each entry is encoded once, when the certificate is revoked, and its bytes are kept
  (the revoker stores them in the inventory), so one more revocation encodes one entry.
* ``build_crl()`` concatenates the encoded entries into the TBSCertList (5.1.2), has the
  CA's Signer sign the TBS bytes and assembles the CertificateList (5.1.1).

Both sit beside their reference through cryptography's builders
(``encode_entry_reference``, ``build_crl_reference``), which
``MTLSKIT_REFERENCE_ENCODERS=1`` selects (:mod:`mtlskit.pki.reference`).

Everything here is pure: no files, no database. The result is DER bytes; callers load
it with ``x509.load_der_x509_crl`` when they need an object.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from mtlskit.errors import BadInput
from mtlskit.pki import der
from mtlskit.pki.der import encode, header, integer, x509_time
from mtlskit.pki.extensions import authority_key_identifier
from mtlskit.pki.reference import reference_encoders

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

    Written by hand (``encode_entry_fast``), or by cryptography's builder
    (``encode_entry_reference``) when ``MTLSKIT_REFERENCE_ENCODERS=1``.

    Raises:
        ValueError: a serial that is not positive.
    """
    if serial <= 0:
        raise ValueError("serial numbers are positive integers (RFC 5280 4.1.2.2)")
    if reference_encoders():
        return encode_entry_reference(serial, revoked_at, reason)
    return encode_entry_fast(serial, revoked_at, reason)


def encode_entry_fast(serial: int, revoked_at: dt.datetime, reason: x509.ReasonFlags | None) -> bytes:
    """``encode_entry`` written by hand (a positive ``serial``)."""
    return encode(der.SEQUENCE, integer(serial) + x509_time(revoked_at) + entry_extensions(reason))


def encode_entry_reference(serial: int, revoked_at: dt.datetime, reason: x509.ReasonFlags | None) -> bytes:
    """``encode_entry`` by cryptography's builders: the entry of a one-entry CRL signed
    with a throw-away key (cryptography encodes revoked certificates only inside a CRL)."""
    entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(revoked_at)
    if reason is not None and reason is not x509.ReasonFlags.unspecified:
        entry = entry.add_extension(x509.CRLReason(reason), critical=False)
    builder = (x509.CertificateRevocationListBuilder()
               .issuer_name(x509.Name([])).last_update(revoked_at).next_update(revoked_at)
               .add_revoked_certificate(entry.build()))
    crl = builder.sign(_throwaway_key(), None)
    return revoked_entries_content(crl.public_bytes(serialization.Encoding.DER))


@functools.lru_cache(maxsize=1)
def _throwaway_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def entry_extensions(reason: x509.ReasonFlags | None) -> bytes:
    """The encoded crlEntryExtensions of an entry revoked for ``reason``: the reasonCode
    extension (RFC 5280 5.3.1), or b"" for ``unspecified`` and None (absent)."""
    if reason is None or reason is x509.ReasonFlags.unspecified:
        return b""
    return _REASON_EXTENSIONS[reason]


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
    _check_crl_parameters(crl_number, this_update, next_update)
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


def build_crl(signer, crl_number: int, this_update: dt.datetime, next_update: dt.datetime,
              entries: Sequence[bytes] | bytes) -> bytes:
    """A signed CertificateList (RFC 5280 5.1.1) in DER.

    Assembled here from the encoded entries and signed with ``signer.sign_bytes``; with
    ``MTLSKIT_REFERENCE_ENCODERS=1``, built by cryptography's builder instead
    (``build_crl_reference``), which the CA key signs through ``signer.sign_crl``.

    Args:
        signer: the CA's :class:`mtlskit.ca.signer.Signer` (its certificate names the
            issuer; its key, which never leaves it, signs).
        crl_number: the monotonically increasing CRL number (5.2.3).
        this_update, next_update: aware datetimes (5.1.2.4, 5.1.2.5).
        entries: encoded revoked-certificate entries from ``encode_entry`` (a sequence,
            or their concatenation, e.g. ``revoked_entries_content(previous) + new``).

    Raises:
        BadInput: a CA key or hash that CRLs are not signed with.
        ValueError: a CRL number out of range, or nextUpdate not after thisUpdate.
    """
    if reference_encoders():
        return build_crl_reference(signer, crl_number, this_update, next_update, entries)
    return build_crl_fast(signer, crl_number, this_update, next_update, entries)


def build_crl_fast(signer, crl_number: int, this_update: dt.datetime, next_update: dt.datetime,
                   entries: Sequence[bytes] | bytes) -> bytes:
    """``build_crl`` assembled here (``build_tbs``) and signed with ``signer.sign_bytes``."""
    algorithm = signer.signature_algorithm
    if algorithm is None:
        raise BadInput(f"cannot sign a CRL with the key of CA {signer.name!r} (hash {_hash_name(signer)})")
    tbs = build_tbs(signer.certificate, algorithm, crl_number, this_update, next_update, entries)
    signature = encode(der.BIT_STRING, b"\x00" + signer.sign_bytes(tbs))
    return b"".join([header(der.SEQUENCE, len(tbs) + len(algorithm) + len(signature)),
                     tbs, algorithm, signature])


def build_crl_reference(signer, crl_number: int, this_update: dt.datetime, next_update: dt.datetime,
                        entries: Sequence[bytes] | bytes) -> bytes:
    """``build_crl`` through cryptography's CertificateRevocationListBuilder: the entries
    are read back into RevokedCertificate objects and the builder signs (slow for big CRLs)."""
    _check_crl_parameters(crl_number, this_update, next_update)
    if signer.signature_algorithm is None:
        raise BadInput(f"cannot sign a CRL with the key of CA {signer.name!r} (hash {_hash_name(signer)})")
    issuer = signer.certificate
    builder = (x509.CertificateRevocationListBuilder()
               .issuer_name(issuer.subject).last_update(this_update).next_update(next_update)
               .add_extension(authority_key_identifier(issuer), critical=False)
               .add_extension(x509.CRLNumber(crl_number), critical=False))
    for revoked in _revoked_certificates(entries):
        builder = builder.add_revoked_certificate(revoked)
    return signer.sign_crl(builder).public_bytes(serialization.Encoding.DER)


def _revoked_certificates(entries: Sequence[bytes] | bytes) -> list[x509.RevokedCertificate]:
    """Encoded entries as cryptography's objects, through its CRL parser (an unsigned
    CertificateList around them: the parser does not check signatures)."""
    content = bytes(entries) if isinstance(entries, (bytes, bytearray, memoryview)) else b"".join(entries)
    if not content:
        return []
    algorithm = der.sequence(der.oid("1.3.101.112"))
    tbs = der.sequence(integer(1), algorithm, der.sequence(), x509_time(_EPOCH), encode(der.SEQUENCE, content))
    wrapped = der.sequence(tbs, algorithm, encode(der.BIT_STRING, b"\x00"))
    return list(x509.load_der_x509_crl(wrapped))


_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)


def _hash_name(signer) -> str | None:
    return signer.hash_algorithm.name if signer.hash_algorithm is not None else None


def _check_crl_parameters(crl_number: int, this_update: dt.datetime, next_update: dt.datetime) -> None:
    if crl_number < 0 or crl_number.bit_length() > 159:
        raise ValueError("the CRL number is a non-negative integer of at most 20 octets (5.2.3)")
    if next_update <= this_update:
        raise ValueError("nextUpdate must be later than thisUpdate")
