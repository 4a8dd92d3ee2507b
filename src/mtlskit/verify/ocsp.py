"""Revocation by OCSP (RFC 6960), asked of the responder named in each certificate's
Authority Information Access extension. Only with ``mtlskit verify --ocsp``.

The request/response handling is pure (:func:`judge_response`); the one network call
is :func:`post_ocsp`, injected so tests can point it at a local responder.
"""

from __future__ import annotations

import datetime as dt
from typing import Callable

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

from mtlskit.verify import fetch
from mtlskit.verify.checks import describe, reason_note
from mtlskit.verify.findings import Finding, error, info, warning

Fetch = Callable[[str, bytes], bytes]


def post_ocsp(url: str, request_der: bytes, timeout: float = fetch.DEFAULT_TIMEOUT) -> bytes:
    """POST an OCSP request (RFC 6960 A.1) and return the response body (bounded: fetch.py)."""
    return fetch.http_post(url, request_der, "application/ocsp-request", fetch.MAX_OCSP_BYTES, timeout)


def ocsp_urls(cert: x509.Certificate) -> list[str]:
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return []
    return [d.access_location.value for d in aia
            if d.access_method == AuthorityInformationAccessOID.OCSP
            and isinstance(d.access_location, x509.UniformResourceIdentifier)]


class OcspSource:
    """A revocation source for :func:`mtlskit.verify.verifier.verify`."""

    def __init__(self, fetch: Fetch = post_ocsp) -> None:
        self.fetch = fetch

    def __call__(self, path: list[x509.Certificate], at: dt.datetime) -> list[Finding]:
        found: list[Finding] = []
        for cert, issuer in zip(path, path[1:]):
            found += self.check(cert, issuer, at)
        return found

    def check(self, cert: x509.Certificate, issuer: x509.Certificate, at: dt.datetime) -> list[Finding]:
        urls = ocsp_urls(cert)
        if not urls:
            return [info("ocsp-no-url", f"{describe(cert)} names no OCSP responder")]
        # SHA-1 CertID: the one every responder must understand (RFC 5019 2.1.1).
        request = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build()
        try:
            body = self.fetch(urls[0], request.public_bytes(serialization.Encoding.DER))
            response = ocsp.load_der_ocsp_response(body)
        except (OSError, fetch.FetchError, ValueError) as exc:
            return [warning("ocsp-unavailable", f"the OCSP responder {urls[0]} did not answer usably: {exc}",
                            "check that the responder (mtlskit serve) is running and reachable")]
        return judge_response(response, cert, issuer, at)


def judge_response(response: ocsp.OCSPResponse, cert: x509.Certificate, issuer: x509.Certificate,
                   at: dt.datetime) -> list[Finding]:
    """Check an OCSP response for ``cert`` (RFC 6960 3.2) and report its status."""
    if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        return [warning("ocsp-unavailable", f"the OCSP responder answered {response.response_status.name}")]
    signer = responder_of(response, issuer)
    if signer is None or not signature_ok(signer.public_key(), response):
        return [error("ocsp-bad-signature", f"the OCSP response for {describe(cert)} is not signed by its CA "
                      "or by a responder that CA authorised", "check the responder's signing certificate")]
    if response.serial_number != cert.serial_number:
        return [error("ocsp-invalid", "the OCSP response is about another certificate")]
    if response.this_update_utc > at + dt.timedelta(minutes=5) or (
            response.next_update_utc is not None and response.next_update_utc < at):
        return [error("ocsp-stale", f"the OCSP response for {describe(cert)} is outside its validity window",
                      "check the responder's clock and refresh interval")]
    status = response.certificate_status
    if status is ocsp.OCSPCertStatus.REVOKED:
        reason = response.revocation_reason
        why = reason_note(reason)
        return [error("revoked", f"{describe(cert)} was revoked on {response.revocation_time_utc:%Y-%m-%d %H:%M} "
                      f"UTC according to OCSP{why}", "issue a new certificate")]
    if status is ocsp.OCSPCertStatus.UNKNOWN:
        return [warning("ocsp-unknown", f"the OCSP responder does not know {describe(cert)}",
                        "was it issued by this CA?")]
    return [info("ocsp-good", f"OCSP says {describe(cert)} is not revoked")]


def responder_of(response: ocsp.OCSPResponse, issuer: x509.Certificate) -> x509.Certificate | None:
    """The CA itself, or a delegated responder it issued with id-kp-OCSPSigning (RFC 6960 4.2.2.2)."""
    if _names(response, issuer):
        return issuer
    for cert in response.certificates:
        if not _names(response, cert) or cert.issuer != issuer.subject:
            continue
        try:
            cert.verify_directly_issued_by(issuer)
            eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
            continue
        if ExtendedKeyUsageOID.OCSP_SIGNING in eku:
            return cert
    return None


def _names(response: ocsp.OCSPResponse, cert: x509.Certificate) -> bool:
    if response.responder_name is not None:
        return response.responder_name == cert.subject
    # RFC 6960 4.2.1: KeyHash is the SHA-1 of the subjectPublicKey BIT STRING value.
    key_hash = x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest
    return response.responder_key_hash == key_hash


def signature_ok(key, response: ocsp.OCSPResponse) -> bool:
    data, sig, algo = response.tbs_response_bytes, response.signature, response.signature_hash_algorithm
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(sig, data, ec.ECDSA(algo))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(sig, data, padding.PKCS1v15(), algo)
        elif isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
            key.verify(sig, data)
        else:
            return False
    except InvalidSignature:
        return False
    return True
