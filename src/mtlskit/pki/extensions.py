"""X.509 extensions for CA and leaf certificates (RFC 5280 section 4.2). Pure."""

from __future__ import annotations

import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa


def ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                         crl_sign=True, encipher_only=False, decipher_only=False)


def leaf_key_usage(public_key, allow_key_encipherment: bool) -> x509.KeyUsage:
    """digitalSignature always; keyEncipherment only for RSA keys when the profile allows it."""
    key_encipherment = allow_key_encipherment and isinstance(public_key, rsa.RSAPublicKey)
    return x509.KeyUsage(digital_signature=True, content_commitment=False,
                         key_encipherment=key_encipherment, data_encipherment=False,
                         key_agreement=False, key_cert_sign=False, crl_sign=False,
                         encipher_only=False, decipher_only=False)


def name_constraints(permit_dns: list[str], permit_ip: list[str],
                     permit_email: list[str]) -> x509.NameConstraints | None:
    """Permitted subtrees for the issuing CA; None when nothing is restricted."""
    subtrees: list[x509.GeneralName] = [x509.DNSName(d.lower().lstrip(".")) for d in permit_dns]
    subtrees += [x509.IPAddress(ipaddress.ip_network(c, strict=False)) for c in permit_ip]
    subtrees += [x509.RFC822Name(e.lstrip("@")) for e in permit_email]
    if not subtrees:
        return None
    return x509.NameConstraints(permitted_subtrees=subtrees, excluded_subtrees=None)


def publication_extensions(public_url: str | None, issuer_name: str) -> list[tuple[x509.ExtensionType, bool]]:
    """CRL distribution point and AIA (OCSP + CA issuers) pointing at `mtlskit serve`."""
    if not public_url:
        return []
    crl_point = x509.DistributionPoint(
        full_name=[x509.UniformResourceIdentifier(f"{public_url}/crl/{issuer_name}.crl")],
        relative_name=None, reasons=None, crl_issuer=None)
    access = [
        x509.AccessDescription(x509.AuthorityInformationAccessOID.OCSP,
                               x509.UniformResourceIdentifier(f"{public_url}/ocsp")),
        x509.AccessDescription(x509.AuthorityInformationAccessOID.CA_ISSUERS,
                               x509.UniformResourceIdentifier(f"{public_url}/ca/{issuer_name}.crt")),
    ]
    return [(x509.CRLDistributionPoints([crl_point]), False),
            (x509.AuthorityInformationAccess(access), False)]


def authority_key_identifier(issuer_certificate: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    """The AKI that names the issuer's key (RFC 5280 4.2.1.1, 5.2.1): its
    subjectKeyIdentifier, or the SHA-1 of its public key when the CA certificate has none
    (mtlskit's CA certificates always have one; a CRL test CA may not)."""
    try:
        ski = issuer_certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        ski = x509.SubjectKeyIdentifier.from_public_key(issuer_certificate.public_key())
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
