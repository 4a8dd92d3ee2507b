"""Fuzz target: the OCSP request decoder against cryptography's parser as the oracle.

For every input (mutations of real requests and structured garbage):
- ``parse_request`` returns or raises BadInput, nothing else;
- it agrees with ``cryptography.x509.ocsp.load_der_ocsp_request``: both refuse, or both
  read the same CertID fields, serial and nonce. The documented differences: this decoder
  also reads requests for several certificates (each entry, put alone in the same
  request, must then read the same with cryptography) and CertIDs with a hash it does
  not know (cryptography loads those but cannot name the hash); it refuses more than
  cryptography only for a negative serial, a nonce outside 1..32 octets (RFC 8954) and
  hash parameters other than absent or NULL (RFC 5754);
- ``split_nonce`` and ``nonce_ends_request`` never raise, and when the latter accepts a
  request, the same bytes with other nonce octets read as the same request with that nonce;
- ``OcspSource.respond`` never raises, and answers ``successful`` only for a request the
  decoder reads (so never for one cryptography refuses), with the serials and nonce asked.
"""

from __future__ import annotations

import dataclasses
import functools

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp as cocsp
from cryptography.x509.oid import OCSPExtensionOID
from hypothesis import strategies as st

from fuzz import engine, pki
from fuzz.mutate import mutated
from mtlskit.clock import FixedClock
from mtlskit.errors import BadInput
from mtlskit.pki import der
from mtlskit.publish import ocsp
from mtlskit.publish.ocsp_source import CertificateState, OcspSource, ServedCa

NONCE_OID = der.oid("1.3.6.1.5.5.7.48.1.2")


# --- seeds: real requests, and shapes cryptography's builder does not write --------------

def _built(cert: x509.Certificate, algorithm: hashes.HashAlgorithm, nonce: bytes | None) -> bytes:
    builder = cocsp.OCSPRequestBuilder().add_certificate(cert, pki.ca()[0], algorithm)
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def _cert_id(data: bytes) -> bytes:
    return ocsp.parse_request(data).cert_ids[0].der


def _request(entries: list[bytes], extensions: list[bytes] | None = None, before: bytes = b"",
             signature: bytes = b"") -> bytes:
    tbs = before + der.sequence(*entries)
    if extensions is not None:
        tbs += der.encode(der.context(2), der.sequence(*extensions))
    return der.sequence(der.encode(der.SEQUENCE, tbs), *([signature] if signature else []))


def _nonce_extension(value: bytes, critical: bool = False) -> bytes:
    flag = der.encode(0x01, b"\xff") if critical else b""
    return der.sequence(NONCE_OID, flag, der.encode(der.OCTET_STRING, der.encode(der.OCTET_STRING, value)))


@functools.cache
def seeds() -> list[bytes]:
    leaves = pki.leaves()
    found = [_built(leaf, algorithm, nonce) for leaf in leaves
             for algorithm in (hashes.SHA1(), hashes.SHA256()) for nonce in (None, b"n" * 16)]
    found += [_built(leaves[0], hashes.SHA384(), b"\x00"), _built(leaves[1], hashes.SHA512(), b"x" * 32)]
    ids = [_cert_id(found[0]), _cert_id(found[4]), _cert_id(found[10])]
    other = der.oid("1.2.840.113549.2.5")  # MD5: a hash this responder does not answer for
    unknown_id = der.sequence(der.sequence(other, der.encode(0x05, b"")), *[der.encode(der.OCTET_STRING, b"\x11" * 16)] * 2,
                              der.integer(5))
    found += [
        _request([der.sequence(i) for i in ids]),                                       # several certificates
        _request([der.sequence(i) for i in ids[:2]], [_nonce_extension(b"m" * 8)]),
        _request([der.sequence(ids[0])], [_nonce_extension(b"a" * 8), _nonce_extension(b"b" * 8)]),  # twice
        _request([der.sequence(ids[0])], [_nonce_extension(b"c" * 8, critical=True)]),
        _request([der.sequence(ids[0])], [der.sequence(der.oid("1.3.6.1.5.5.7.48.1.4"),
                                                       der.encode(der.OCTET_STRING, der.sequence()))]),
        _request([der.sequence(ids[0])], before=der.encode(der.context(0), der.integer(0))),        # version v1
        _request([der.sequence(ids[0])], before=der.encode(der.context(1), der.encode(0xA4, der.sequence()))),
        _request([der.sequence(ids[0], der.encode(der.context(0), der.sequence()))]),  # singleRequestExtensions
        _request([der.sequence(unknown_id)]),
        _request([der.sequence(ids[0])], signature=der.encode(der.context(0), der.sequence())),
    ]
    return found


CASES = st.one_of(mutated(seeds()), st.binary(max_size=300))


# --- the oracle -----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Read:
    """What cryptography reads; hash_name None for a hash it does not know, nonce_ok False
    when it refuses the extensions."""

    hash_name: str | None
    name_hash: bytes
    key_hash: bytes
    serial: int
    nonce: bytes | None
    extensions_ok: bool


def cryptography_reads(data: bytes) -> Read | None:
    try:
        request = cocsp.load_der_ocsp_request(data)
    except Exception:  # ValueError for everything it refuses
        return None
    try:
        hash_name = request.hash_algorithm.name
    except UnsupportedAlgorithm:
        hash_name = None
    try:
        extensions = request.extensions
        found = [e.value.nonce for e in extensions if e.oid == OCSPExtensionOID.NONCE]
        nonce, extensions_ok = (der.encode(der.OCTET_STRING, found[0]) if found else None), True
    except Exception:  # ValueError, DuplicateExtension
        nonce, extensions_ok = None, False
    return Read(hash_name, request.issuer_name_hash, request.issuer_key_hash, request.serial_number, nonce,
                extensions_ok)


def ours(data: bytes) -> ocsp.OcspRequest | BadInput:
    try:
        return ocsp.parse_request(data)
    except BadInput as exc:
        return exc


def _same(cert_id: ocsp.CertId, read: Read) -> bool:
    hash_ok = cert_id.hash_name == read.hash_name if read.hash_name else cert_id.hash_name not in ocsp.HASHES
    return (hash_ok and cert_id.issuer_name_hash == read.name_hash and cert_id.issuer_key_hash == read.key_hash
            and cert_id.serial == read.serial)


def _stricter(refusal: BadInput, read: Read) -> bool:
    """Refusals this decoder makes on purpose where cryptography reads the request."""
    message = refusal.message
    if "negative" in message:
        return read.serial < 0
    if "nonce" in message:
        return read.nonce is not None and not 1 <= len(read.nonce) - 2 <= ocsp.MAX_NONCE_OCTETS
    return "parameters must be absent or NULL" in message


def single_requests(data: bytes) -> list[bytes]:
    """The request once per entry of its request list, each alone in the list."""
    _tag, start, end = der.read_tlv(data, 0)
    _tbs_tag, _tbs_pos, tstart, tend = der.children(data, start, end)[0]
    fields = der.children(data, tstart, tend)
    _list_tag, lpos, lstart, lend = next(f for f in fields if f[0] == der.SEQUENCE)
    singles = []
    for _t, rpos, _rs, rend in der.children(data, lstart, lend):
        tbs = data[tstart:lpos] + der.encode(der.SEQUENCE, data[rpos:rend]) + data[lend:tend]
        singles.append(der.encode(der.SEQUENCE, der.encode(der.SEQUENCE, tbs) + data[tend:end]))
    return singles


def check_decoder(data: bytes) -> ocsp.OcspRequest | None:
    parsed = ours(data)
    read = cryptography_reads(data)
    if isinstance(parsed, BadInput):
        if read is not None and read.hash_name and read.extensions_ok:
            assert _stricter(parsed, read), f"refused ({parsed.message}) what cryptography reads: {read}"
        return None
    if read is None or len(parsed.cert_ids) > 1:
        for index, single in enumerate(single_requests(data)):
            alone = cryptography_reads(single)
            assert alone is not None, f"entry {index} of a request cryptography refuses is read: {parsed}"
            assert _same(parsed.cert_ids[index], alone), f"entry {index}: {parsed.cert_ids[index]} != {alone}"
            assert alone.extensions_ok and alone.nonce == parsed.nonce, f"nonce {parsed.nonce!r} != {alone}"
        return parsed
    assert _same(parsed.cert_ids[0], read), f"{parsed.cert_ids[0]} != {read}"
    assert read.extensions_ok and read.nonce == parsed.nonce, f"nonce {parsed.nonce!r} != {read}"
    return parsed


def check_nonce_split(data: bytes, parsed: ocsp.OcspRequest | None) -> None:
    split = ocsp.split_nonce(data)
    if parsed is None or not ocsp.nonce_ends_request(data, parsed):
        return
    assert split is not None and parsed.nonce == split[1]
    octets = len(data) - len(split[0])
    other = bytes((b ^ 0x5A) for b in data[-octets:])
    again = ocsp.parse_request(split[0] + other)
    assert again.cert_ids == parsed.cert_ids and again.nonce == split[0][-2:] + other


# --- the responder ---------------------------------------------------------------------------

class _Lookup:
    def state(self, issuer, serial):
        return CertificateState(ocsp.CertStatus.REVOKED if serial % 2 else ocsp.CertStatus.GOOD, pki.NOW,
                                x509.ReasonFlags.key_compromise)

    def change_marker(self):
        return 0

    def changed_since(self, marker):
        return 0, set()


@functools.cache
def source() -> OcspSource:
    """One responder per process: the nonce shapes it learns from valid requests meet the
    mutated ones that follow (the nonce fast path answers without parsing)."""
    served = ServedCa("fuzz", pki.ca()[0], pki.responder())
    return OcspSource([served], _Lookup(), FixedClock(pki.NOW), refresh_seconds=3600)


def check_responder(data: bytes, parsed: ocsp.OcspRequest | None) -> None:
    reply = source().respond(data)
    response = cocsp.load_der_ocsp_response(reply.body)
    if response.response_status is not cocsp.OCSPResponseStatus.SUCCESSFUL:
        return
    assert parsed is not None, "answered successful for a request the decoder refuses"
    serials = [single.serial_number for single in response.responses]
    assert serials == [c.serial for c in parsed.cert_ids], f"answered {serials} for {parsed.cert_ids}"
    found = [e.value.nonce for e in response.extensions if e.oid == OCSPExtensionOID.NONCE]
    echoed = der.encode(der.OCTET_STRING, found[0]) if found else None
    assert echoed == parsed.nonce, f"echoed nonce {echoed!r} for {parsed.nonce!r}"


def check(data: bytes) -> None:
    parsed = check_decoder(data)
    check_nonce_split(data, parsed)
    check_responder(data, parsed)


if __name__ == "__main__":
    engine.main("ocsp_request", CASES, check)
