"""OCSP (RFC 6960) requests and responses. Pure: bytes and cryptography objects in,
bytes out; no files, no database, no clock (times are arguments).

Pre-signed (cacheable) single-certificate responses are built and signed with
cryptography's ``ocsp.OCSPResponseBuilder``. That builder accepts only one
SingleResponse ("Only one response per OCSPResponse."), and ``load_der_ocsp_request``
refuses requests for several certificates, so requests are read here with a small
DER reader, and a request for several certificates is answered by assembling
ResponseData with one SingleResponse per certificate (RFC 6960 §4.2.1) and signing it
with the responder key. Nonce responses, signed on every request, take the same
assembly path: the builder re-encodes the responder certificate and its key hash on
each call (~180 µs here against ~60 µs). A unit test holds the assembled
ResponseData byte-equal to the builder's; ``openssl ocsp`` and pkilint judge both.

The narrow functions are ``build_response`` and ``prepare_response``; with
``MTLSKIT_REFERENCE_ENCODERS=1`` both answer through cryptography's builder
(``build_response_reference``), so the whole test suite can run on it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import functools
from typing import Callable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import OCSPExtensionOID

from mtlskit.errors import BadInput
from mtlskit.pki import der, signing
from mtlskit.pki.keys import signature_hash
from mtlskit.pki.reference import reference_encoders
from mtlskit.publish.crl import REASON_CODES

# RFC 6960 §4.1.1 CertID.hashAlgorithm: the hashes a client may use to name the issuer.
HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1, "sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512,
}
_HASH_OIDS = {
    der.oid("1.3.14.3.2.26"): "sha1",
    der.oid("2.16.840.1.101.3.4.2.1"): "sha256",
    der.oid("2.16.840.1.101.3.4.2.2"): "sha384",
    der.oid("2.16.840.1.101.3.4.2.3"): "sha512",
}
# The AlgorithmIdentifier of a CertID as RFC 5754 §2 allows it: the OID with absent or
# NULL parameters. Anything else is refused, never echoed into a signed answer.
_HASH_ALGORITHM_IDS = frozenset(der.encode(der.SEQUENCE, oid + params)
                                for oid in _HASH_OIDS for params in (b"", b"\x05\x00"))
_NONCE_OID = der.oid(OCSPExtensionOID.NONCE.dotted_string)
_BASIC_OID = der.oid("1.3.6.1.5.5.7.48.1.1")  # id-pkix-ocsp-basic, RFC 6960 §4.2.1
MAX_NONCE_OCTETS = 32  # RFC 8954 §2.1: longer nonces MUST be rejected with malformedRequest
MAX_REQUEST_OCTETS = 16 * 1024


class CertStatus(enum.Enum):
    """RFC 6960 §2.2 certificate status values."""

    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"


@dataclasses.dataclass(frozen=True)
class CertId:
    """A certificate as a client names it (RFC 6960 §4.1.1 CertID).

    Attributes:
        hash_name: "sha1", "sha256", "sha384", "sha512", or the hex of an unknown OID.
        issuer_name_hash: hash of the issuer's DER-encoded subject name.
        issuer_key_hash: hash of the issuer's subjectPublicKey BIT STRING value.
        serial: the certificate's serial number.
        der: the CertID as received; echoed unchanged in multi-certificate responses.
    """

    hash_name: str
    issuer_name_hash: bytes
    issuer_key_hash: bytes
    serial: int
    der: bytes


@dataclasses.dataclass(frozen=True)
class OcspRequest:
    """What a request asks: the certificates and, if present, the nonce extension value."""

    cert_ids: tuple[CertId, ...]
    nonce: bytes | None = None  # extnValue as received: DER OCTET STRING holding the nonce


@dataclasses.dataclass(frozen=True)
class SingleAnswer:
    """The status of one certificate, for one SingleResponse."""

    cert_id: CertId
    status: CertStatus
    revoked_at: dt.datetime | None = None
    reason: x509.ReasonFlags | None = None


@dataclasses.dataclass(frozen=True)
class ResponderKey:
    """A delegated OCSP responder: its certificate and the key that signs responses.

    The parts of a response that depend only on the responder (ResponderID byKey, the
    certs field, the signature AlgorithmIdentifier) are encoded once, on first use.
    """

    certificate: x509.Certificate
    private_key: object

    @functools.cached_property
    def responder_id_der(self) -> bytes:
        """ResponderID byKey [2]: SHA-1 of the responder's subjectPublicKey (RFC 6960 §4.2.1)."""
        key_hash = x509.SubjectKeyIdentifier.from_public_key(self.certificate.public_key()).digest
        return der.encode(der.context(2), der.encode(der.OCTET_STRING, key_hash))

    @functools.cached_property
    def certs_der(self) -> bytes:
        """BasicOCSPResponse.certs [0]: the responder certificate, so clients can verify it."""
        return der.encode(der.context(0), der.sequence(self.certificate.public_bytes(serialization.Encoding.DER)))

    @functools.cached_property
    def signature_algorithm_der(self) -> bytes:
        return _signature_algorithm(self.private_key)

    @functools.cached_property
    def sign(self) -> Callable[[bytes], bytes]:
        """Signs bytes with the responder key; the algorithm is chosen once, not per call."""
        return _signing_function(self.private_key)


def parse_request(data: bytes) -> OcspRequest:
    """Read a DER OCSPRequest (RFC 6960 §4.1.1).

    Raises:
        BadInput: not a well-formed OCSP request, an empty request list, or a nonce
            longer than 32 octets (RFC 8954 §2.1).
    """
    if not data or len(data) > MAX_REQUEST_OCTETS:
        raise BadInput("OCSP request is empty or too large")
    quick = _parse_single_with_cryptography(data)
    return quick if quick is not None else _parse_der(data)


def _parse_single_with_cryptography(data: bytes) -> OcspRequest | None:
    """The common case, one certificate, read by cryptography's (Rust) parser; None for
    what it does not read (several certificates, an unknown hash) or cannot read, which
    the DER walker then reads or refuses with a precise message."""
    try:
        request = ocsp.load_der_ocsp_request(data)
        hash_name = request.hash_algorithm.name
        extensions = request.extensions
    except Exception:  # ValueError, NotImplementedError, UnsupportedAlgorithm
        return None
    if hash_name not in HASHES:
        return None
    nonce = None
    for extension in extensions:
        if extension.oid == OCSPExtensionOID.NONCE:
            value = extension.value.nonce
            if not 1 <= len(value) <= MAX_NONCE_OCTETS:
                raise BadInput("OCSP nonce must be an OCTET STRING of 1 to 32 octets")
            nonce = der.encode(der.OCTET_STRING, value)
    cert_id_der = _first_cert_id_der(data)
    if request.serial_number < 0 or not _plain_hash_algorithm(cert_id_der):
        return None  # the DER walker refuses it with its reason
    cert_id = CertId(hash_name, request.issuer_name_hash, request.issuer_key_hash, request.serial_number,
                     cert_id_der)
    return OcspRequest((cert_id,), nonce)


def _plain_hash_algorithm(cert_id_der: bytes) -> bool:
    """True when the CertID's hashAlgorithm is a known hash with absent or NULL parameters."""
    _tag, start, end = der.read_tlv(cert_id_der, 0)
    _tag, astart, aend = der.read_tlv(cert_id_der, start, end)
    return bytes(cert_id_der[start:aend]) in _HASH_ALGORITHM_IDS


def _first_cert_id_der(data: bytes) -> bytes:
    """The bytes of the first CertID: OCSPRequest > tbsRequest > requestList > Request > CertID."""
    _tag, start, end = der.read_tlv(data, 0)
    _tag, pos, end = der.read_tlv(data, start, end)           # tbsRequest
    tag, vstart, vend = der.read_tlv(data, pos, end)
    while tag in (der.context(0), der.context(1)):             # version, requestorName
        pos = vend
        tag, vstart, vend = der.read_tlv(data, pos, end)
    _tag, rstart, rend = der.read_tlv(data, vstart, vend)      # the first Request
    _tag, _cstart, cend = der.read_tlv(data, rstart, rend)     # its CertID
    return data[rstart:cend]


def _parse_der(data: bytes) -> OcspRequest:
    start, end = der.expect(data, 0, der.SEQUENCE)
    if end != len(data):
        raise BadInput("trailing bytes after the OCSP request")
    parts = der.children(data, start, end)
    if not parts or parts[0][0] != der.SEQUENCE or any(p[0] != der.context(0) for p in parts[1:2]) \
            or len(parts) > 2:
        raise BadInput("OCSPRequest must hold tbsRequest and an optional signature")
    _tag, _pos, tstart, tend = parts[0]
    fields = der.children(data, tstart, tend)
    # tbsRequest: [0] version, [1] requestorName, requestList, [2] requestExtensions
    while fields and fields[0][0] in (der.context(0), der.context(1)):
        tag, _p, vstart, vend = fields.pop(0)
        if tag == der.context(0):
            vs, ve = der.expect(data, vstart, der.INTEGER, vend)
            if der.decode_integer(data[vs:ve]) != 0:
                raise BadInput("unsupported OCSP request version")
    if not fields or fields[0][0] != der.SEQUENCE:
        raise BadInput("OCSP request has no request list")
    _tag, lpos, lstart, lend = fields.pop(0)
    entries = der.children(data, lstart, lend)
    cert_ids = tuple(_parse_single_request(data, r) for r in entries)
    if not cert_ids:
        raise BadInput("OCSP request list is empty")
    nonce = None
    if fields:
        tag, _p, estart, eend = fields.pop(0)
        if tag != der.context(2) or fields:
            raise BadInput("unexpected element after the request list")
        nonce = _find_nonce(data, estart, eend)
    for _t, rpos, _s, rend in entries:  # what this walker skips (names, criticality...) is judged too
        tbs = data[tstart:lpos] + der.encode(der.SEQUENCE, data[rpos:rend]) + data[lend:tend]
        _well_formed_alone(der.encode(der.SEQUENCE, der.encode(der.SEQUENCE, tbs) + data[tend:end]))
    return OcspRequest(cert_ids, nonce)


def _well_formed_alone(data: bytes) -> None:
    """Refuse a request that cryptography's parser refuses once its request list is cut to
    one entry: the DER walker reads the CertIDs, nonce and order, cryptography judges the
    rest (requestorName, singleRequestExtensions, the extensions' criticality and the
    values of those it knows, such as AcceptableResponses, DER's rules such as an
    explicit default version)."""
    try:
        ocsp.load_der_ocsp_request(data).extensions  # noqa: B018 - read lazily: a damaged value raises here
    except Exception:  # ValueError, DuplicateExtension
        raise BadInput("OCSP request is not well-formed DER (RFC 6960 §4.1.1)") from None


def _parse_single_request(data: bytes, element: tuple[int, int, int, int]) -> CertId:
    tag, _pos, start, end = element
    if tag != der.SEQUENCE:
        raise BadInput("request list entry is not a SEQUENCE")
    items = der.children(data, start, end)
    if not items or items[0][0] != der.SEQUENCE or len(items) > 2:
        raise BadInput("Request must hold a CertID")
    _t, cpos, cstart, cend = items[0]
    fields = der.children(data, cstart, cend)
    if [f[0] for f in fields] != [der.SEQUENCE, der.OCTET_STRING, der.OCTET_STRING, der.INTEGER]:
        raise BadInput("CertID must be hashAlgorithm, issuerNameHash, issuerKeyHash, serialNumber")
    alg = der.children(data, fields[0][2], fields[0][3])
    if not alg or alg[0][0] != der.OID:
        raise BadInput("CertID hash algorithm has no OID")
    if len(alg) > 2 or (len(alg) == 2 and data[alg[1][1]:alg[1][3]] != b"\x05\x00"):
        raise BadInput("CertID hash algorithm parameters must be absent or NULL (RFC 5754 §2)")
    alg_oid = data[alg[0][1]:alg[0][3]]
    hash_name = _HASH_OIDS.get(alg_oid, alg_oid.hex())
    serial = der.decode_integer(data[fields[3][2]:fields[3][3]])
    if serial < 0:
        raise BadInput("CertID serial number is negative (RFC 5280 §4.1.2.2)")
    return CertId(hash_name=hash_name,
                  issuer_name_hash=data[fields[1][2]:fields[1][3]],
                  issuer_key_hash=data[fields[2][2]:fields[2][3]],
                  serial=serial, der=data[cpos:cend])


def _find_nonce(data: bytes, start: int, end: int) -> bytes | None:
    estart, eend = der.expect(data, start, der.SEQUENCE, end)
    seen: set[bytes] = set()
    nonce = None
    for tag, pos, vstart, vend in der.children(data, estart, eend):
        if tag != der.SEQUENCE:
            raise BadInput("request extension is not a SEQUENCE")
        parts = der.children(data, vstart, vend)
        if not parts or parts[0][0] != der.OID or parts[-1][0] != der.OCTET_STRING:
            raise BadInput("request extension must be an OID and an OCTET STRING")
        extension_oid = data[parts[0][1]:parts[0][3]]
        if extension_oid in seen:  # RFC 5280 §4.2: at most one instance of an extension
            raise BadInput("a request extension appears twice")
        seen.add(extension_oid)
        if extension_oid != _NONCE_OID:
            continue
        value = data[parts[-1][2]:parts[-1][3]]
        inner_start, inner_end = der.expect(value, 0, der.OCTET_STRING)  # RFC 8954 §2.1 Nonce
        if inner_end != len(value) or not 1 <= inner_end - inner_start <= MAX_NONCE_OCTETS:
            raise BadInput("OCSP nonce must be an OCTET STRING of 1 to 32 octets")
        nonce = value
    return nonce


def issuer_hashes(issuer: x509.Certificate, hash_name: str) -> tuple[bytes, bytes]:
    """(issuerNameHash, issuerKeyHash) of a CA certificate for one hash (RFC 6960 §4.1.1)."""
    algorithm = HASHES[hash_name]()
    name = hashes.Hash(algorithm)
    name.update(issuer.subject.public_bytes())
    spki = issuer.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    key = hashes.Hash(HASHES[hash_name]())
    key.update(_subject_public_key_bits(spki))
    return name.finalize(), key.finalize()


def _subject_public_key_bits(spki: bytes) -> bytes:
    start, end = der.expect(spki, 0, der.SEQUENCE)
    _tag, _pos, bstart, bend = der.children(spki, start, end)[1]
    return spki[bstart + 1:bend]  # skip the unused-bits octet


def unsuccessful(status: ocsp.OCSPResponseStatus) -> bytes:
    """An unsigned error response: malformedRequest, internalError, tryLater, unauthorized."""
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(serialization.Encoding.DER)


MALFORMED_REQUEST = unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
UNAUTHORIZED = unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)
INTERNAL_ERROR = unsuccessful(ocsp.OCSPResponseStatus.INTERNAL_ERROR)
TRY_LATER = unsuccessful(ocsp.OCSPResponseStatus.TRY_LATER)


def build_response(answers: list[SingleAnswer], responder: ResponderKey, this_update: dt.datetime,
                   next_update: dt.datetime, nonce: bytes | None = None) -> bytes:
    """A signed, successful OCSPResponse (DER) answering every certificate asked.

    Args:
        answers: one per CertID of the request, in request order.
        responder: the delegated responder that signs (RFC 6960 §4.2.2.2).
        this_update: producedAt and every thisUpdate (whole seconds are kept).
        next_update: every nextUpdate; RFC 5019 §2.2.4 wants it present.
        nonce: the request's nonce extension value, echoed (RFC 8954 §2.1).
    """
    this_update = this_update.replace(microsecond=0)
    next_update = next_update.replace(microsecond=0)
    if reference_encoders():
        return build_response_reference(answers, responder, this_update, next_update, nonce)
    if len(answers) == 1 and nonce is None:
        return _build_with_cryptography(answers[0], responder, this_update, next_update, nonce)
    return _assemble(answers, responder, this_update, next_update, nonce)


def build_response_reference(answers: list[SingleAnswer], responder: ResponderKey, this_update: dt.datetime,
                             next_update: dt.datetime, nonce: bytes | None = None) -> bytes:
    """``build_response`` through cryptography's OCSPResponseBuilder, which stamps
    producedAt with the system time. The builder takes one SingleResponse only; for
    several, each SingleResponse is the builder's and only their list is put together
    here, around them, as the fast path does."""
    this_update = this_update.replace(microsecond=0)
    next_update = next_update.replace(microsecond=0)
    if len(answers) == 1:
        return _build_with_cryptography(answers[0], responder, this_update, next_update, nonce)
    singles = b"".join(_single_response_reference(a, responder, this_update, next_update) for a in answers)
    body = responder.responder_id_der + der.generalized_time(this_update) + der.sequence(singles)
    return PreparedResponse(body, responder).sign(nonce)


def _single_response_reference(answer: SingleAnswer, responder: ResponderKey, this_update: dt.datetime,
                               next_update: dt.datetime) -> bytes:
    """The SingleResponse cryptography's builder encodes for ``answer``: ResponseData >
    responses > the first SingleResponse (RFC 6960 §4.2.1)."""
    built = ocsp.load_der_ocsp_response(_build_with_cryptography(answer, responder, this_update, next_update, None))
    data = built.tbs_response_bytes
    _tag, start, end = der.read_tlv(data, 0)
    # responderID [2] and producedAt come first; responses is the only SEQUENCE
    responses = next(child for child in der.children(data, start, end) if child[0] == der.SEQUENCE)
    _tag, single_start, _content, single_end = der.children(data, responses[2], responses[3])[0]
    return data[single_start:single_end]


def prepare_response(answers: list[SingleAnswer], responder: ResponderKey, this_update: dt.datetime,
                     next_update: dt.datetime) -> "PreparedResponse | ReferencePreparedResponse":
    """What a nonce responder keeps per second and certificate: ResponseData ready to be
    closed with each request's nonce and signed (``.sign(nonce)``). The DER fast path
    (:class:`PreparedResponse`), or the reference when ``MTLSKIT_REFERENCE_ENCODERS=1``."""
    if reference_encoders():
        return ReferencePreparedResponse(answers, responder, this_update, next_update)
    return PreparedResponse(response_data_body(answers, responder, this_update, next_update), responder)


class ReferencePreparedResponse:
    """:class:`PreparedResponse`'s reference: every ``sign`` builds the whole response
    with ``build_response_reference``."""

    def __init__(self, answers: list[SingleAnswer], responder: ResponderKey, this_update: dt.datetime,
                 next_update: dt.datetime) -> None:
        self._arguments = (list(answers), responder, this_update, next_update)

    def sign(self, nonce: bytes | None = None) -> bytes:
        return build_response_reference(*self._arguments, nonce)


def _build_with_cryptography(answer: SingleAnswer, responder: ResponderKey, this_update: dt.datetime,
                             next_update: dt.datetime, nonce: bytes | None) -> bytes:
    cid = answer.cert_id
    builder = (ocsp.OCSPResponseBuilder()
               .add_response_by_hash(cid.issuer_name_hash, cid.issuer_key_hash, cid.serial,
                                     HASHES[cid.hash_name](), _CRYPTOGRAPHY_STATUS[answer.status],
                                     this_update, next_update, _revocation_time(answer, this_update),
                                     answer.reason if answer.status is CertStatus.REVOKED else None)
               .responder_id(ocsp.OCSPResponderEncoding.HASH, responder.certificate)
               .certificates([responder.certificate]))
    if nonce is not None:
        builder = builder.add_extension(x509.UnrecognizedExtension(OCSPExtensionOID.NONCE, nonce), False)
    response = builder.sign(responder.private_key, signature_hash(responder.private_key))
    return response.public_bytes(serialization.Encoding.DER)


_CRYPTOGRAPHY_STATUS = {CertStatus.GOOD: ocsp.OCSPCertStatus.GOOD,
                        CertStatus.REVOKED: ocsp.OCSPCertStatus.REVOKED,
                        CertStatus.UNKNOWN: ocsp.OCSPCertStatus.UNKNOWN}


def _revocation_time(answer: SingleAnswer, this_update: dt.datetime) -> dt.datetime | None:
    # A revoked record always has revoked_at; should one lack it, say "by thisUpdate".
    if answer.status is not CertStatus.REVOKED:
        return None
    return (answer.revoked_at or this_update).replace(microsecond=0)


# --- several certificates: ResponseData assembled here (RFC 6960 §4.2.1) -------------------

def _assemble(answers: list[SingleAnswer], responder: ResponderKey, this_update: dt.datetime,
              next_update: dt.datetime, nonce: bytes | None) -> bytes:
    return sign_response_data(response_data_body(answers, responder, this_update, next_update), responder, nonce)


def response_data_body(answers: list[SingleAnswer], responder: ResponderKey, this_update: dt.datetime,
                       next_update: dt.datetime, produced_at: dt.datetime | None = None) -> bytes:
    """The contents of ResponseData up to the extensions: responderID (byKey), producedAt
    (defaults to ``this_update``) and one SingleResponse per answer (RFC 6960 §4.2.1).

    It depends on the time only to the second, so a nonce responder may reuse it for
    every request within that second and add only the nonce (see sign_response_data).
    """
    singles = b"".join(_single_response(a, this_update, next_update) for a in answers)
    return responder.responder_id_der + der.generalized_time(produced_at or this_update) + der.sequence(singles)


def sign_response_data(body: bytes, responder: ResponderKey, nonce: bytes | None = None) -> bytes:
    """Close ResponseData (adding the nonce extension, RFC 8954), sign it with the responder
    key and wrap it into BasicOCSPResponse and a successful OCSPResponse (DER)."""
    return PreparedResponse(body, responder).sign(nonce)


class PreparedResponse:
    """ResponseData up to the extensions (see response_data_body), ready to be closed with
    a request's nonce and signed; a nonce responder keeps one per second and certificate.

    Everything but the nonce value and the signature is encoded once per nonce length
    and signature length: per request it costs one signature and two concatenations.
    """

    __slots__ = ("_body", "_responder", "_heads", "_wraps")

    def __init__(self, body: bytes, responder: ResponderKey) -> None:
        self._body = body
        self._responder = responder
        self._heads: dict[int, bytes] = {}
        self._wraps: dict[tuple[int, int], tuple[bytes, bytes]] = {}

    def sign(self, nonce: bytes | None = None) -> bytes:
        """The signed OCSPResponse; ``nonce`` is the request's nonce extnValue (RFC 8954 §2.1)."""
        size = -1 if nonce is None else len(nonce)
        head = self._heads.get(size)
        if head is None:
            head = self._heads[size] = _tbs_head(self._body, size)
        tbs = head if nonce is None else head + nonce
        signature = self._responder.sign(tbs)
        key = (len(tbs), len(signature))  # ECDSA signatures vary by a byte or two
        wrap = self._wraps.get(key)
        if wrap is None:
            wrap = self._wraps[key] = _wrapping(self._responder, *key)
        return b"".join((wrap[0], tbs, wrap[1], signature, self._responder.certs_der))


def _tbs_head(body: bytes, nonce_size: int) -> bytes:
    """ResponseData (RFC 6960 §4.2.1) up to the nonce value: all of it when ``nonce_size``
    is -1 (no nonce), else everything before the extnValue octets of the nonce extension
    ``responseExtensions [1] { Extension { id-pkix-ocsp-nonce, extnValue } }``."""
    if nonce_size < 0:
        return der.header(der.SEQUENCE, len(body)) + body
    value_header = der.header(der.OCTET_STRING, nonce_size)
    extension_size = len(_NONCE_OID) + len(value_header) + nonce_size
    extension_header = der.header(der.SEQUENCE, extension_size)
    list_size = len(extension_header) + extension_size
    list_header = der.header(der.SEQUENCE, list_size)
    tagged_size = len(list_header) + list_size
    tagged_header = der.header(der.context(1), tagged_size)
    tbs_size = len(body) + len(tagged_header) + tagged_size
    return b"".join((der.header(der.SEQUENCE, tbs_size), body, tagged_header, list_header, extension_header,
                     _NONCE_OID, value_header))


def _wrapping(responder: ResponderKey, tbs_size: int, signature_size: int) -> tuple[bytes, bytes]:
    """What goes before ResponseData and between it and the signature value, for a
    successful OCSPResponse { responseBytes { id-pkix-ocsp-basic, BasicOCSPResponse {
    tbsResponseData, signatureAlgorithm, signature BIT STRING, certs [0] } } } (RFC 6960 §4.2.1)."""
    between = responder.signature_algorithm_der + der.header(der.BIT_STRING, signature_size + 1) + b"\x00"
    basic_size = tbs_size + len(between) + signature_size + len(responder.certs_der)
    basic_header = der.header(der.SEQUENCE, basic_size)
    octets_header = der.header(der.OCTET_STRING, len(basic_header) + basic_size)
    bytes_size = len(_BASIC_OID) + len(octets_header) + len(basic_header) + basic_size
    bytes_header = der.header(der.SEQUENCE, bytes_size)
    tagged_header = der.header(der.context(0), len(bytes_header) + bytes_size)
    outer_size = len(_SUCCESSFUL) + len(tagged_header) + len(bytes_header) + bytes_size
    before = b"".join((der.header(der.SEQUENCE, outer_size), _SUCCESSFUL, tagged_header, bytes_header, _BASIC_OID,
                       octets_header, basic_header))
    return before, between


# --- nonce requests: parsed once per request shape ------------------------------------------

_NONCE_TAIL = _NONCE_OID + bytes((der.OCTET_STRING,))  # extnID then extnValue, no critical flag


def split_nonce(data: bytes) -> tuple[bytes, bytes] | None:
    """(everything before the nonce octets, the nonce extnValue) when ``data`` ends with a
    nonce extension, as openssl, cryptography and nginx send it; else None.

    Unvalidated: the first part is only a key for requests that differ in nothing but
    the nonce octets. It speaks for the request only once :func:`nonce_ends_request`
    accepted an earlier, fully parsed request with the same first part: DER lengths
    are in that part, so the rest of such a request is read exactly alike.
    """
    at = data.rfind(_NONCE_TAIL)
    if at < 0:
        return None
    pos = at + len(_NONCE_TAIL)  # the extnValue length octet: OCTET STRING { OCTET STRING nonce }
    if pos + 3 > len(data):
        return None
    outer, tag, size = data[pos], data[pos + 1], data[pos + 2]
    if tag != der.OCTET_STRING or outer != size + 2 or not 1 <= size <= MAX_NONCE_OCTETS \
            or pos + 3 + size != len(data):
        return None
    return data[:pos + 3], data[pos + 1:]


def nonce_ends_request(data: bytes, parsed: OcspRequest) -> bool:
    """True when the nonce of this parsed request is the last thing in it: OCSPRequest and
    tbsRequest end with the data (no signature), the extensions [2] come last, the nonce
    extension is the last and only nonce extension, and its value is what
    :func:`split_nonce` finds. Then any request with the same bytes before the nonce
    octets (same lengths) and other nonce octets is the same request with another nonce."""
    split = split_nonce(data)
    if split is None or parsed.nonce != split[1]:
        return False
    try:
        _tag, start, end = der.read_tlv(data, 0)
        tag, start, end = der.read_tlv(data, start, end)                  # tbsRequest
        if end != len(data) or tag != der.SEQUENCE:
            return False
        last = der.children(data, start, end)[-1]                         # requestExtensions [2]
        if last[0] != der.context(2) or last[3] != len(data):
            return False
        tag, start, end = der.read_tlv(data, last[2], last[3])            # Extensions
        extensions = der.children(data, start, end) if tag == der.SEQUENCE else []
    except (BadInput, IndexError):
        return False
    nonces = [e for e in extensions if data[e[2]:e[2] + len(_NONCE_OID)] == _NONCE_OID]
    at = len(split[0]) - 4 - len(_NONCE_OID)  # where split_nonce found the extnID
    return len(nonces) == 1 and nonces[0][2] == at and nonces[0][3] == len(data) == end


_SUCCESSFUL = der.encode(der.ENUMERATED, b"\x00")  # OCSPResponseStatus successful (RFC 6960 §4.2.1)


def tbs_response_data(answers: list[SingleAnswer], responder: ResponderKey,
                      this_update: dt.datetime, next_update: dt.datetime,
                      nonce: bytes | None = None, produced_at: dt.datetime | None = None) -> bytes:
    """ResponseData (v1, responderID byKey) with one SingleResponse per answer; producedAt
    defaults to ``this_update``. The encoding PreparedResponse signs."""
    body = response_data_body(answers, responder, this_update, next_update, produced_at)
    if nonce is None:
        return _tbs_head(body, -1)
    return _tbs_head(body, len(nonce)) + nonce


def _single_response(answer: SingleAnswer, this_update: dt.datetime, next_update: dt.datetime) -> bytes:
    if answer.status is CertStatus.GOOD:
        status = der.encode(der.context(0, constructed=False), b"")
    elif answer.status is CertStatus.UNKNOWN:
        status = der.encode(der.context(2, constructed=False), b"")
    else:
        info = der.generalized_time(_revocation_time(answer, this_update))
        if answer.reason is not None:
            code = REASON_CODES[answer.reason]
            info += der.encode(der.context(0), der.encode(der.ENUMERATED, bytes((code,))))
        status = der.encode(der.context(1), info)
    return der.sequence(answer.cert_id.der, status, der.generalized_time(this_update),
                        der.encode(der.context(0), der.generalized_time(next_update)))


def _signature_algorithm(private_key) -> bytes:
    """The AlgorithmIdentifier of the responder's signatures (``mtlskit.pki.signing``)."""
    found = signing.algorithm_identifier(private_key, signature_hash(private_key))
    if found is None:
        raise BadInput(f"unsupported responder key {type(private_key).__name__}")
    return found


def _signing_function(private_key) -> Callable[[bytes], bytes]:
    function = signing.signer(private_key, signature_hash(private_key))
    if function is None:
        raise BadInput(f"unsupported responder key {type(private_key).__name__}")
    return function
