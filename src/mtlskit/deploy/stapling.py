"""OCSP stapling of a deployment's server certificate (RFC 6066 section 8, RFC 6960).

Nginx and Apache fetch the response themselves from the responder named in their
configuration. HAProxy 2.6 only staples a file, ``<crt>.ocsp`` (DER), loaded at start
and replaced at run time through the admin socket (``set ssl ocsp-response``): mtlskit
fetches it from its own responder at deploy time; ``refresh_staple`` fetches it again and
hands it to the running HAProxy, for the CRL refresh to call so the answer stays current.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import urllib.request
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from mtlskit.deploy.install import atomic_write
from mtlskit.deploy.reload import haproxy_admin
from mtlskit.errors import BadInput
from mtlskit.verify.ocsp import responder_of, signature_ok

MAX_RESPONSE = 64 * 1024


@dataclasses.dataclass(frozen=True)
class Staple:
    """A verified, current "good" OCSP response for one server certificate."""

    der: bytes
    serial: int
    next_update: dt.datetime | None


def staple_path(server_cert: Path) -> Path:
    """Where HAProxy looks for the stapled response of ``crt`` (``server.pem.ocsp``)."""
    return server_cert.with_name(server_cert.name + ".ocsp")


def fetch_staple(chain_pem: bytes, ocsp_url: str, now: dt.datetime, timeout: float = 5) -> Staple:
    """Ask ``ocsp_url`` about the leaf of ``chain_pem`` (leaf + its issuer) and check the answer.

    Raises:
        BadInput: the chain has no issuer, the responder is unreachable or answers anything
            but a current, correctly signed "good" for this certificate.
    """
    chain = x509.load_pem_x509_certificates(chain_pem)
    if len(chain) < 2:
        raise BadInput("the server chain holds no issuer certificate to ask OCSP about")
    leaf, issuer = chain[0], chain[1]
    request = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA1()).build()
    der = _post(ocsp_url, request.public_bytes(serialization.Encoding.DER), timeout)
    return Staple(der, leaf.serial_number, check_response(der, leaf, issuer, now))


def check_response(der: bytes, leaf: x509.Certificate, issuer: x509.Certificate,
                   now: dt.datetime) -> dt.datetime | None:
    """The response's nextUpdate, once it is proven a current "good" signed for ``leaf``.

    Raises:
        BadInput: anything else (a server must never staple a wrong or stale answer).
    """
    try:
        response = ocsp.load_der_ocsp_response(der)
    except ValueError as exc:
        raise BadInput(f"the OCSP responder sent no OCSP response: {exc}") from None
    if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise BadInput(f"the OCSP responder answered {response.response_status.name.lower()}")
    if response.serial_number != leaf.serial_number:
        raise BadInput("the OCSP response is about another certificate")
    if response.certificate_status is not ocsp.OCSPCertStatus.GOOD:
        raise BadInput(f"the OCSP responder says the server certificate is "
                       f"{response.certificate_status.name.lower()}")
    next_update = response.next_update_utc
    if response.this_update_utc > now + dt.timedelta(minutes=5) or (next_update and next_update <= now):
        raise BadInput("the OCSP response is not current (thisUpdate/nextUpdate)")
    _check_signature(response, issuer)
    return next_update


def _check_signature(response: ocsp.OCSPResponse, issuer: x509.Certificate) -> None:
    """Signed by the issuer itself, or by a responder certificate the issuer signed (RFC 6960 4.2.2.2)."""
    signer = responder_of(response, issuer)
    if signer is None or not signature_ok(signer.public_key(), response):
        raise BadInput("the OCSP response signature does not verify (neither the CA nor an OCSP-signing "
                       "responder it certified signed it)")


def _post(url: str, body: bytes, timeout: float) -> bytes:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/ocsp-request"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            data = answer.read(MAX_RESPONSE + 1)
    except (OSError, ValueError) as exc:
        raise BadInput(f"the OCSP responder {url} did not answer: {exc}") from None
    if len(data) > MAX_RESPONSE:
        raise BadInput(f"the OCSP responder {url} sent more than {MAX_RESPONSE} bytes")
    return data


def refresh_staple(server_cert: Path, ocsp_url: str, now: dt.datetime, admin_socket: Path | None = None,
                   timeout: float = 5) -> str:
    """Fetch a fresh response for the deployed ``server_cert``, write ``<crt>.ocsp`` atomically
    and, with ``admin_socket`` (a running HAProxy), hand it over with ``set ssl ocsp-response``.

    For the CRL refresh of HAProxy deployments. Returns one line saying what was done.

    Raises:
        BadInput: no fresh response could be fetched (the old file is left in place), or
            HAProxy refused it.
    """
    staple = fetch_staple(server_cert.read_bytes(), ocsp_url, now, timeout)
    atomic_write(staple_path(server_cert), staple.der)
    until = f" (next update {staple.next_update:%Y-%m-%d %H:%MZ})" if staple.next_update else ""
    if admin_socket is None or not admin_socket.exists():
        return f"wrote {staple_path(server_cert)}{until}"
    payload = base64.b64encode(staple.der)
    try:
        answer = haproxy_admin(admin_socket, b"set ssl ocsp-response " + payload + b"\n", timeout)
    except OSError as exc:
        raise BadInput(f"haproxy admin socket {admin_socket}: {exc.strerror or exc}") from None
    if "OCSP Response updated" not in answer:
        raise BadInput(f"haproxy refused the OCSP response: {answer.strip() or 'no answer'}")
    return f"stapled a fresh OCSP response through {admin_socket}{until}"

