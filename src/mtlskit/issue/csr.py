"""Signing a CSR: the request supplies a key and names, the profile decides the rest."""

from __future__ import annotations

from cryptography import x509

from mtlskit.ca.authority import Authority
from mtlskit.errors import BadInput, PolicyViolation
from mtlskit.issue.issuer import LeafTemplate, apply_profile_defaults, record_of
from mtlskit.issue.profiles import Profile
from mtlskit.pki import names
from mtlskit.pki.encoding import load_csr
from mtlskit.store.inventory import CertificateRecord


def sign_csr(service, authority: Authority, csr_data: bytes, profile: Profile,
             days: int | None) -> tuple[x509.Certificate, CertificateRecord]:
    """Verify the CSR, apply the profile, sign, record.

    Only the subject CN (or, for servers, the first DNS name) and the SANs of the CSR are
    used; key usage, EKU and basicConstraints requested in the CSR are ignored.

    Raises:
        BadInput: not a CSR, or its signature does not verify.
        PolicyViolation: weak key, names outside the constraints, lifetime too long.
    """
    csr = load_csr(csr_data)
    if not csr.is_signature_valid:
        raise BadInput("the CSR's signature does not verify (corrupted, or not signed by its key)")
    template = LeafTemplate(authority, profile, service.settings.public_url, service.clock.now(), days)
    sans = names.sans_of(csr)
    name = names.common_name_of(csr.subject) or _first_dns(sans)
    if not name:
        raise PolicyViolation("the CSR has neither a subject CN nor a DNS name to identify it")
    sans = apply_profile_defaults(profile, name, sans)
    certificate = template.sign(names.subject_name(name), sans, csr.public_key())
    record = record_of(certificate, template.signer.name, name, profile.name)
    service.inventory.add_certificates([record], service.clock.now(), action="sign")
    return certificate, record


def _first_dns(sans: list[x509.GeneralName]) -> str | None:
    return next((n.value for n in sans if isinstance(n, x509.DNSName)), None)
