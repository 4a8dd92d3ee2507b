"""Remote renewal, the CA's side (``POST /api/v1/renew`` on `serve --tls-port`).

The caller is the certificate it presented in the TLS handshake (verified against the
CA by the TLS layer): it must be in the inventory, live and not yet renewed. The CSR
gives only the new public key (and proves its possession); the successor copies
everything else from the caller's certificate (:func:`mtlskit.lifecycle.renew.sign_renewal`).
"""

from __future__ import annotations

import hashlib

from mtlskit.errors import BadInput, PolicyViolation
from mtlskit.pki.encoding import load_csr
from mtlskit.store.inventory import CertificateRecord


class NotAuthenticated(PolicyViolation):
    """No client certificate, or one this CA did not issue."""

    code = "not-authenticated"


def renew_for_caller(service, authority, client_der: bytes | None, csr_pem: bytes) -> CertificateRecord:
    """The successor of the caller's certificate, for the CSR's key, recorded.

    Raises:
        NotAuthenticated: no client certificate, or not one of this inventory.
        PolicyViolation: the caller's certificate is revoked, expired or already renewed.
        BadInput: not a CSR, a signature that does not verify, or the caller's own key.
    """
    if not client_der:
        raise NotAuthenticated("renewal needs the current certificate as a TLS client certificate",
                               hint="mtlskit renew --ca-url URL --cert-dir DIR sends cert.pem and key.pem of DIR")
    old = service.inventory.by_fingerprint(hashlib.sha256(client_der).hexdigest())
    if old is None:
        raise NotAuthenticated("the client certificate is not in this CA's inventory")
    return renew_for_csr(service, authority, old, csr_pem)


def renew_for_csr(service, authority, old: CertificateRecord, csr_pem: bytes) -> CertificateRecord:
    """The successor of ``old`` for the CSR's (new) key, recorded; no file written (also
    ``POST /api/v1/certificates/{target}/renew`` with a CSR).

    Raises:
        PolicyViolation: ``old`` is revoked, expired or already renewed.
        BadInput: not a CSR, a signature that does not verify, or ``old``'s own key.
    """
    from mtlskit.lifecycle.renew import sign_renewal

    csr = load_csr(csr_pem)
    if not csr.is_signature_valid:
        raise BadInput("the CSR's signature does not verify (corrupted, or not signed by its key)")
    if csr.public_key() == x509_public_key(old):
        raise BadInput("the CSR reuses the current certificate's key; remote renewal needs a new key")
    return sign_renewal(service, authority, old, csr.public_key())


def x509_public_key(record: CertificateRecord):
    from cryptography import x509

    return x509.load_pem_x509_certificate(record.pem.encode("ascii")).public_key()
