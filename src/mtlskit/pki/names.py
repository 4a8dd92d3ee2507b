"""Names: subjects and subjectAltNames, parsed from what users type. Pure; no I/O."""

from __future__ import annotations

import ipaddress
import re

from cryptography import x509
from cryptography.x509.oid import NameOID

from mtlskit.errors import BadInput

_DNS_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$", re.IGNORECASE)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


def looks_like_hostname(text: str) -> bool:
    """True for names such as `api.example.com` or `*.svc.local` (at least one dot)."""
    labels = text.rstrip(".").split(".")
    if len(labels) < 2:
        return False
    if labels[0] == "*":
        labels = labels[1:]
    return all(_DNS_LABEL.match(label) for label in labels)


def dns_name(text: str) -> x509.DNSName:
    value = text.strip().rstrip(".").lower()
    labels = value.split(".")
    if labels and labels[0] == "*":
        labels = labels[1:]
    if not value or not labels or not all(_DNS_LABEL.match(label) for label in labels):
        raise BadInput(f"{text!r} is not a valid DNS name")
    return x509.DNSName(value)


def ip_address(text: str) -> x509.IPAddress:
    try:
        return x509.IPAddress(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise BadInput(f"{text!r} is not a valid IP address") from None


def email_address(text: str) -> x509.RFC822Name:
    value = text.strip()
    if not _EMAIL.match(value):
        raise BadInput(f"{text!r} is not a valid email address")
    return x509.RFC822Name(value)


def uri(text: str) -> x509.UniformResourceIdentifier:
    value = text.strip()
    scheme, sep, rest = value.partition(":")
    if not sep or not scheme or not rest or not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*$", scheme):
        raise BadInput(f"{text!r} is not a valid URI (expected scheme:rest, e.g. spiffe://org/svc)")
    return x509.UniformResourceIdentifier(value)


def general_name_text(name: x509.GeneralName) -> str:
    """`DNS:x`, `IP:x`, `email:x`, `URI:x` — the spelling openssl and step use."""
    if isinstance(name, x509.DNSName):
        return f"DNS:{name.value}"
    if isinstance(name, x509.IPAddress):
        return f"IP:{name.value}"
    if isinstance(name, x509.RFC822Name):
        return f"email:{name.value}"
    if isinstance(name, x509.UniformResourceIdentifier):
        return f"URI:{name.value}"
    if isinstance(name, x509.DirectoryName):
        return f"DirName:{name.value.rfc4514_string()}"
    return f"{type(name).__name__}:{getattr(name, 'value', '?')}"


def check_subject(common_name: str, org_unit: str | None = None) -> None:
    """Refuse what :func:`subject_name` refuses, without building the name (batch issuance
    checks every name before the workers build them).

    Raises:
        BadInput: an empty or too long common name, or a too long org unit.
    """
    if not common_name or len(common_name) > 64:
        raise BadInput(f"name {common_name!r} must be 1 to 64 characters (X.520 ub-common-name)")
    if org_unit and len(org_unit) > 64:
        raise BadInput("--org-unit must be at most 64 characters")


def subject_name(common_name: str, organization: str | None = None,
                 org_unit: str | None = None) -> x509.Name:
    check_subject(common_name, org_unit)
    attributes = []
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization[:64]))
    if org_unit:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, org_unit))
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def common_name_of(name: x509.Name) -> str | None:
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else None


def sans_of(certificate_or_csr) -> list[x509.GeneralName]:
    try:
        ext = certificate_or_csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return list(ext.value)
