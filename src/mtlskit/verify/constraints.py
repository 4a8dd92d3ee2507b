"""Name constraints on the subject, which cryptography's verifier leaves out.

cryptography checks the SANs of a path against its CAs' name constraints (Web PKI: the
subject CN is not a name there). OpenSSL also reads, for the leaf without a DNS SAN, every
subject CN that looks like a DNS name as one, and every emailAddress attribute of the
subject of a non-self-issued certificate as an email name (x509_vfy.c
``check_name_constraints``, v3_ncons.c). So that ``mtlskit verify`` and ``openssl verify``
agree, those are checked here, with the same matcher as the issuer (pki/constraints.py).
"""

from __future__ import annotations

from cryptography import x509
from cryptography.x509.oid import NameOID

from mtlskit.pki import constraints
from mtlskit.pki.names import general_name_text, sans_of
from mtlskit.verify.checks import describe, is_self_issued
from mtlskit.verify.findings import Finding, error

HINT = "reissue the certificate with names inside its CA's name constraints"


def check_subject_constraints(path: list[x509.Certificate]) -> list[Finding]:
    """Findings for subject names outside the constraints of a CA above them on ``path``
    (leaf first, trust anchor last)."""
    for index, cert in enumerate(path[:-1]):
        if index and is_self_issued(cert):
            continue   # RFC 5280 6.1.4 (b): self-issued intermediates are not constrained
        names = _subject_names(cert, leaf=index == 0)
        for ca in path[index + 1:]:
            for constraint in constraints.constraints_of([ca]):
                outside = next((n for n in names if not constraints.permits(constraint, n)), None)
                if outside is not None:
                    return [error("name-constraints",
                                  f"{describe(cert)} has the subject name {general_name_text(outside)}, "
                                  f"outside the name constraints of {describe(ca)} "
                                  f"(permitted: {constraints.describe(constraint)})", HINT)]
    return []


def _subject_names(cert: x509.Certificate, leaf: bool) -> list[x509.GeneralName]:
    found: list[x509.GeneralName] = [
        x509.RFC822Name(str(a.value)) for a in cert.subject.get_attributes_for_oid(NameOID.EMAIL_ADDRESS)
        if str(a.value).isascii()]   # not an IA5String: not a mailbox (OpenSSL refuses it outright)
    if leaf and not any(isinstance(n, x509.DNSName) for n in _sans(cert)):
        for attribute in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
            host = constraints.cn_dns_id(str(attribute.value))
            if host is not None:
                found.append(x509.DNSName(host))
    return found


def _sans(cert: x509.Certificate) -> list[x509.GeneralName]:
    try:
        return sans_of(cert)
    except (ValueError, TypeError, x509.DuplicateExtension):   # the path check reports it
        return []
