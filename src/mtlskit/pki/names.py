"""Names: subjects and subjectAltNames, parsed from what users type. Pure; no I/O."""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from typing import Sequence

from cryptography import x509
from cryptography.x509.oid import NameOID

from mtlskit.errors import BadInput

# Anchored with \A and \Z, never ^ and $: "$" also matches before a trailing newline.
_DNS_LABEL = re.compile(r"\A(?!-)[a-z0-9-]{1,63}(?<!-)\Z", re.IGNORECASE)
_EMAIL = re.compile(r"\A[!-?A-~]+@[!-?A-~]+\Z")             # printable ASCII, one @
_URI_SCHEME = re.compile(r"\A[a-zA-Z][a-zA-Z0-9+.-]*\Z")
_URI_REST = re.compile(r"\A[!-~]+\Z")                            # RFC 3986: no space, no control
_IP_CHARS = re.compile(r"\A[0-9A-Fa-f:.]{2,45}\Z")

# A NAME names a certificate in the inventory, a directory of `mtlskit issue`, and a
# deployment in server configurations: an identifier, so it is safe in every one of them.
NAME_MAX = 64                    # X.520 ub-common-name: a NAME is also the subject CN
NAME_RULE = "1 to 64 letters, digits, '.', '-', '_' or '@', not starting with '.' or '-'"
_NAME = re.compile(r"\A(?![.-])[A-Za-z0-9._@-]{1,64}\Z")
_SERIAL_LIKE = re.compile(r"\A[0-9A-Fa-f]{8,}\Z")   # `show`/`revoke` read these as serials


def check_name(text: str, what: str = "NAME") -> str:
    """Return ``text`` if it is a valid NAME, else raise.

    A NAME is written into server configurations, directory names and log lines, so it
    is an identifier: ASCII letters, digits, ``.``, ``-``, ``_``, ``@``; at most 64
    characters; not starting with ``.`` (hidden files, ``..``) or ``-`` (an option). A
    NAME of 8 or more hex digits is refused too: it would read as a serial number.

    Raises:
        BadInput: anything else (``what`` names the option or source in the message).
    """
    if not isinstance(text, str) or not _NAME.match(text):
        raise BadInput(f"{what} {shown(text)} is not a valid NAME: use {NAME_RULE}")
    if _SERIAL_LIKE.match(text):
        raise BadInput(f"{what} {shown(text)} looks like a serial number: a NAME of 8 or more hex "
                       f"digits is refused", hint="add a letter outside a-f, or a '-' (e.g. host-1234abcd)")
    return text


def is_valid_name(text: str) -> bool:
    try:
        check_name(text)
    except BadInput:
        return False
    return True


PATH_SHOWN = 300   # paths are shown whole in messages, up to this length


def shown(value: object, limit: int = 80) -> str:
    """``repr`` of a refused value for a one-line message: escapes line breaks and control
    characters, and cuts what is too long."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 5] + "...'"


def looks_like_hostname(text: str) -> bool:
    """True for names such as `api.example.com` or `*.svc.local` (at least one dot)."""
    labels = text.rstrip(".").split(".")
    if len(labels) < 2:
        return False
    if labels[0] == "*":
        labels = labels[1:]
    return all(_DNS_LABEL.match(label) for label in labels)


def dns_name(text: str) -> x509.DNSName:
    """A DNS name as typed (``api.example.com``, ``*.svc.local``); a trailing dot is dropped.

    Raises:
        BadInput: anything else, surrounding spaces and line breaks included.
    """
    value = text.rstrip(".").lower()
    labels = value.split(".")
    if labels and labels[0] == "*":
        labels = labels[1:]
    if not value or len(value) > 253 or not labels or not all(_DNS_LABEL.match(label) for label in labels):
        raise BadInput(f"{shown(text)} is not a valid DNS name")
    return x509.DNSName(value)


def ip_address(text: str) -> x509.IPAddress:
    """An IPv4 or IPv6 address (no zone index: ``%eth0`` names an interface of this host)."""
    try:
        if not _IP_CHARS.match(text):
            raise ValueError(text)
        return x509.IPAddress(ipaddress.ip_address(text))
    except ValueError:
        raise BadInput(f"{shown(text)} is not a valid IP address") from None


EMAIL_MAX = 254    # RFC 5321 4.5.3.1.3: a path is at most 256 octets with its angle brackets
URI_MAX = 2048     # the SPIFFE ID limit; generous for any identity URI


def email_address(text: str) -> x509.RFC822Name:
    """A mailbox (``alice@example.com``): printable ASCII, one ``@``, no wildcard."""
    if not isinstance(text, str) or len(text) > EMAIL_MAX or not _EMAIL.match(text) or "*" in text:
        raise BadInput(f"{shown(text)} is not a valid email address (at most {EMAIL_MAX} characters, "
                       f"no wildcard)")
    return x509.RFC822Name(text)


def uri(text: str) -> x509.UniformResourceIdentifier:
    """An identity URI (``spiffe://org/svc``): scheme:rest, printable ASCII, no wildcard."""
    scheme, sep, rest = text.partition(":") if isinstance(text, str) else ("", "", "")
    if (not sep or not scheme or not rest or len(text) > URI_MAX or "*" in text
            or not _URI_SCHEME.match(scheme) or not _URI_REST.match(rest)):
        raise BadInput(f"{shown(text)} is not a valid URI (expected scheme:rest, e.g. spiffe://org/svc, "
                       f"at most {URI_MAX} characters, no wildcard)")
    return x509.UniformResourceIdentifier(text)


def requested_san(name: x509.GeneralName) -> x509.GeneralName:
    """A subjectAltName written by someone else (a CSR), through the grammar of the
    options that type them: DNS (normalised as ``dns_name`` does), IP address, email, URI.

    Raises:
        BadInput: another form (directoryName, otherName, registeredID), an IP network,
            or a value outside its grammar (a malformed wildcard included).
    """
    if isinstance(name, x509.DNSName):
        return dns_name(name.value)
    if isinstance(name, x509.IPAddress):
        if isinstance(name.value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
            return name
        raise BadInput(f"IP:{name.value} is a network, not an address")
    if isinstance(name, x509.RFC822Name):
        return email_address(name.value)
    if isinstance(name, x509.UniformResourceIdentifier):
        return uri(name.value)
    raise BadInput(f"the subjectAltName {shown(general_name_text(name))} is of a form this CA does not sign",
                   hint="request only DNS, IP, email and URI names")


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
    if org_unit:
        subject_field("org_unit", org_unit)


def subject_name(common_name: str, attributes: Sequence[x509.NameAttribute] = (), *,
                 org_unit: str | None = None) -> x509.Name:
    """``C, ST, L, O, OU`` (``attributes``, already checked and in that order, e.g.
    ``SubjectOptions.attributes()``), then ``CN=common_name``: one attribute per RDN, the
    order of the guides (``openssl x509 -subject`` prints them so)."""
    check_subject(common_name, org_unit)
    fields = list(attributes) + (subject_attributes(org_unit=org_unit) if org_unit else [])
    return x509.Name(fields + [x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


# RFC 5280 appendix A.1 upper bounds (ub-state-name, ub-locality-name, ub-organization-name,
# ub-organizational-unit-name); a country is ISO 3166 alpha-2.
SUBJECT_FIELD_MAX = {"state": 128, "locality": 128, "org": 64, "org_unit": 64}
SUBJECT_OPTION = {"country": "--country", "state": "--state", "locality": "--locality",
                  "org": "--org", "org_unit": "--org-unit"}
SUBJECT_OID = {"country": NameOID.COUNTRY_NAME, "state": NameOID.STATE_OR_PROVINCE_NAME,
               "locality": NameOID.LOCALITY_NAME, "org": NameOID.ORGANIZATION_NAME,
               "org_unit": NameOID.ORGANIZATIONAL_UNIT_NAME}
SUBJECT_SHORT = {"country": "C", "state": "ST", "locality": "L", "org": "O", "org_unit": "OU"}
_COUNTRY = re.compile(r"\A[A-Za-z]{2}\Z")
# Control, format (bidi overrides, zero-width), separator, surrogate, private and unassigned.
_REFUSED_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def subject_field(field: str, value: str, source: str = "option") -> str:
    """A C, ST, L, O or OU value as typed (``field``: country, state, locality, org,
    org_unit), checked: the country an assigned ISO 3166 alpha-2 code (upper-cased), the others 1 to their
    RFC 5280 upper bound of characters, printable (no control or format character, no
    line break), no surrounding spaces. An empty string is returned as is (it clears a default).

    These values reach server configurations and the identity headers (X-Client-DN), so
    anything that could be read as something else there is refused here.

    Raises:
        BadInput: the message names ``--option``, ``[subject] key`` (``source="[subject]"``)
            or ``the CSR's O`` (``source="CSR"``).
    """
    what = {"[subject]": f"[subject] {field}", "CSR": f"the CSR's {SUBJECT_SHORT[field]}"}.get(
        source, SUBJECT_OPTION[field])
    if not isinstance(value, str):
        raise BadInput(f"{what} must be text, got {shown(value)}")
    if value == "":
        return value
    if field == "country":
        return _country(what, value)
    limit = SUBJECT_FIELD_MAX[field]
    if len(value) > limit:
        raise BadInput(f"{what} is {len(value)} characters: at most {limit} (RFC 5280)")
    if any(unicodedata.category(c) in _REFUSED_CATEGORIES for c in value):
        raise BadInput(f"{what} {shown(value)} holds a control or format character")
    if value != value.strip():
        raise BadInput(f"{what} {shown(value)} starts or ends with a space")
    return value


def _country(what: str, value: str) -> str:
    from mtlskit.pki.countries import ALPHA2, MISTAKEN

    code = value.upper()
    if not _COUNTRY.match(value) or code not in ALPHA2:
        meant = MISTAKEN.get(code)
        raise BadInput(f"{what} {shown(value)} is not a country: use its two-letter ISO 3166 code (e.g. DE)",
                       hint=f"{code} is written {meant} in ISO 3166" if meant else None)
    return code


def subject_attributes(country: str | None = None, state: str | None = None, locality: str | None = None,
                       org: str | None = None, org_unit: str | None = None) -> list[x509.NameAttribute]:
    """C, ST, L, O, OU attributes (already checked values), in that order, for those set."""
    values = (country, state, locality, org, org_unit)
    return [x509.NameAttribute(oid, value) for oid, value in zip(SUBJECT_OID.values(), values) if value]


def common_name_of(name: x509.Name) -> str | None:
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else None


def sans_of(certificate_or_csr) -> list[x509.GeneralName]:
    try:
        ext = certificate_or_csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return list(ext.value)
