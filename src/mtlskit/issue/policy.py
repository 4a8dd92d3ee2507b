"""Issuance policy checks: each a small function that raises PolicyViolation."""

from __future__ import annotations

import datetime as dt
from cryptography import x509

from mtlskit.errors import BadInput, PolicyViolation
from mtlskit.issue import lifetime
from mtlskit.issue.profiles import Profile
from mtlskit.pki import constraints, names


def check_lifetime(profile: Profile, days: int) -> None:
    """A lifetime in whole days within the profile's bounds (see ``issue.lifetime``)."""
    if days < 1:
        raise PolicyViolation(f"lifetime of {days} days refused: at least 1 day is required")
    lifetime.check_profile_maximum(profile, dt.timedelta(days=days))


def check_within_issuer(issuer: x509.Certificate, not_after: dt.datetime, option: str = "--days") -> None:
    """Refuse a certificate that would outlive its issuing CA: it is never cut short silently."""
    if not_after > issuer.not_valid_after_utc:
        raise PolicyViolation(
            f"the certificate would outlive its issuing CA (which expires "
            f"{issuer.not_valid_after_utc:%Y-%m-%d %H:%M}Z)", hint=f"ask for fewer {option}")


def check_required_sans(profile: Profile, sans: list[x509.GeneralName]) -> None:
    if profile.requires_san and not sans:
        raise PolicyViolation(f"a {profile.name} certificate needs at least one subjectAltName",
                              hint="give --dns, --ip, --email or --uri")


def name_constraints_of(ca_certificates: list[x509.Certificate]) -> list[x509.NameConstraints]:
    """The name constraints of every CA on the path that has some."""
    return constraints.constraints_of(ca_certificates)


def check_name_constraints(ca_certificates: list[x509.Certificate],
                           sans: list[x509.GeneralName], common_name: str | None = None) -> None:
    """Refuse names outside the permitted subtrees of any CA on the path (RFC 5280 4.2.1.10)."""
    check_names_within(name_constraints_of(ca_certificates), sans, common_name)


def check_names_within(found: list[x509.NameConstraints], sans: list[x509.GeneralName],
                       common_name: str | None = None) -> None:
    """Every SAN, and the subject CN when it reads as a DNS name (OpenSSL reads it so
    when a certificate has no DNS SAN; the CA refuses it whatever the SANs), must be
    inside every CA's constraints."""
    host = constraints.cn_dns_id(common_name) if common_name and found else None
    for constraint in found:
        for name in sans:
            if not constraints.permits(constraint, name):
                raise PolicyViolation(
                    f"{names.general_name_text(name)} is outside the CA's name constraints "
                    f"(permitted: {constraints.describe(constraint)})",
                    hint="issue only names under the permitted domains, networks and mail domains")
        if host is not None and not constraints.permits(constraint, x509.DNSName(host)):
            raise PolicyViolation(
                f"the subject CN {names.shown(common_name)} is a DNS name outside the CA's name "
                f"constraints (permitted: {constraints.describe(constraint)})",
                hint="use a NAME under the permitted domains, or one that is not a DNS name (no dot)")


MAX_SANS = 100   # subjectAltNames per certificate, whatever the source (flags or a CSR)


def check_san_count(sans: list[x509.GeneralName]) -> None:
    if len(sans) > MAX_SANS:
        raise BadInput(f"{len(sans)} subjectAltNames refused: a certificate holds at most {MAX_SANS}",
                       hint="split the names over several certificates")


def check_wildcards(profile: Profile, sans: list[x509.GeneralName]) -> None:
    """A wildcard is a whole left-most label over at least two labels (the grammar of
    ``names.dns_name``), and only a server certificate may hold one: a client or peer
    certificate names one identity, never a family of them."""
    for name in sans:
        if isinstance(name, x509.DNSName) and name.value.startswith("*."):
            if not profile.wildcard_dns:
                raise PolicyViolation(f"the wildcard DNS:{name.value} is refused in a {profile.name} "
                                      f"certificate: only server certificates may hold wildcards",
                                      hint="name each host with its own --dns")
            if name.value.count(".") < 2:
                raise PolicyViolation(f"the wildcard DNS:{name.value} covers a whole top-level domain",
                                      hint="use *.NAME.TLD or deeper (e.g. *.svc.example.com)")
