"""Issuance policy checks: each a small function that raises PolicyViolation."""

from __future__ import annotations

import datetime as dt
import ipaddress

from cryptography import x509

from mtlskit.errors import PolicyViolation
from mtlskit.issue.profiles import Profile
from mtlskit.pki.names import general_name_text


def check_lifetime(profile: Profile, days: int) -> None:
    if days < 1:
        raise PolicyViolation(f"lifetime of {days} days refused: at least 1 day is required")
    if days > profile.max_days:
        raise PolicyViolation(f"lifetime of {days} days refused: the {profile.name} profile allows "
                              f"at most {profile.max_days} days",
                              hint=f"ask for --days {profile.max_days} or less")


def check_within_issuer(issuer: x509.Certificate, not_after: dt.datetime) -> None:
    if not_after > issuer.not_valid_after_utc:
        raise PolicyViolation(
            f"the certificate would outlive its issuing CA (which expires "
            f"{issuer.not_valid_after_utc:%Y-%m-%d})", hint="ask for fewer --days")


def check_required_sans(profile: Profile, sans: list[x509.GeneralName]) -> None:
    if profile.requires_san and not sans:
        raise PolicyViolation(f"a {profile.name} certificate needs at least one subjectAltName",
                              hint="give --dns, --ip, --email or --uri")


def name_constraints_of(ca_certificates: list[x509.Certificate]) -> list[x509.NameConstraints]:
    """The name constraints of every CA on the path that has some."""
    found = []
    for ca in ca_certificates:
        try:
            found.append(ca.extensions.get_extension_for_class(x509.NameConstraints).value)
        except x509.ExtensionNotFound:
            continue
    return found


def check_name_constraints(ca_certificates: list[x509.Certificate],
                           sans: list[x509.GeneralName]) -> None:
    """Refuse SANs outside the permitted subtrees of any CA on the path (RFC 5280 4.2.1.10)."""
    check_names_within(name_constraints_of(ca_certificates), sans)


def check_names_within(constraints: list[x509.NameConstraints], sans: list[x509.GeneralName]) -> None:
    for constraint in constraints:
        for name in sans:
            if not _permitted(name, constraint):
                raise PolicyViolation(
                    f"{general_name_text(name)} is outside the CA's name constraints "
                    f"(permitted: {_describe(constraint)})",
                    hint="issue only names under the permitted domains, networks and mail domains")


def _permitted(name: x509.GeneralName, constraints: x509.NameConstraints) -> bool:
    same_kind = [c for c in (constraints.permitted_subtrees or []) if type(c) is type(name)]
    excluded = [c for c in (constraints.excluded_subtrees or []) if type(c) is type(name)]
    if any(_matches(name, c) for c in excluded):
        return False
    if not constraints.permitted_subtrees or not same_kind:
        # No permitted subtree of this name form: the form is unconstrained, except that a
        # URI's host is not checked here (constraints on URIs need a uniformResourceIdentifier
        # subtree, which mtlskit never writes).
        return True
    return any(_matches(name, c) for c in same_kind)


def _matches(name: x509.GeneralName, subtree: x509.GeneralName) -> bool:
    if isinstance(name, x509.DNSName):
        return _dns_within(name.value.lower().lstrip("*."), subtree.value.lower())
    if isinstance(name, x509.IPAddress):
        return isinstance(subtree.value, (ipaddress.IPv4Network, ipaddress.IPv6Network)) and \
            name.value.version == subtree.value.version and name.value in subtree.value
    if isinstance(name, x509.RFC822Name):
        domain = subtree.value.lower()
        mailbox = name.value.lower()
        if "@" in domain:
            return mailbox == domain
        host = mailbox.rsplit("@", 1)[-1]
        return host == domain.lstrip(".") if not domain.startswith(".") else host.endswith(domain)
    return True


def _dns_within(host: str, domain: str) -> bool:
    domain = domain.lstrip(".")
    return host == domain or host.endswith("." + domain)


def _describe(constraints: x509.NameConstraints) -> str:
    return ", ".join(general_name_text(n) for n in constraints.permitted_subtrees or []) or "none"
