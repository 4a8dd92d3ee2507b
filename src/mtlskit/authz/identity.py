"""The identity of a client certificate, as the policy's ``match`` keys name it (pure)."""

from __future__ import annotations

import dataclasses

from cryptography import x509
from cryptography.x509.oid import NameOID

from mtlskit.authz.policy import Policy, Rule


@dataclasses.dataclass(frozen=True)
class Identity:
    """key (cn, ou, san_dns, san_uri, san_email, issuer) -> the certificate's values,
    lower-cased where the policy ignores case (san_dns, san_email)."""

    values: dict[str, frozenset[str]]

    def matches(self, rule: Rule) -> bool:
        return any(_value_matches(pattern, self.values.get(key, ())) for key, patterns in rule.match.items()
                   for pattern in patterns)


def identity_of(certificate: x509.Certificate, ca_name: str) -> Identity:
    """The identity of ``certificate``, issued by the CA mtlskit calls ``ca_name``."""
    from mtlskit.deploy.headers import dn_string

    subject = certificate.subject
    values: dict[str, set[str]] = {
        "cn": {a.value for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)},
        "ou": {a.value for a in subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)},
        "issuer": {ca_name, dn_string(certificate.issuer), certificate.issuer.rfc4514_string()},
        "san_dns": set(), "san_uri": set(), "san_email": set(),
    }
    try:
        sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        sans = []
    for name in sans:
        if isinstance(name, x509.DNSName):
            values["san_dns"].add(name.value.lower())
        elif isinstance(name, x509.UniformResourceIdentifier):
            values["san_uri"].add(name.value)
        elif isinstance(name, x509.RFC822Name):
            values["san_email"].add(name.value.lower())
    return Identity({key: frozenset(v) for key, v in values.items()})


def _value_matches(pattern: str, values) -> bool:
    if "*" not in pattern:
        return pattern in values
    if pattern.startswith("*."):           # one DNS label
        suffix = pattern[1:]
        return any(v.endswith(suffix) and "." not in v[:-len(suffix)] and len(v) > len(suffix) for v in values)
    if pattern.startswith("*@"):           # any mailbox of the domain
        suffix = pattern[1:]
        return any(v.endswith(suffix) and "@" not in v[:-len(suffix)] and len(v) > len(suffix) for v in values)
    prefix = pattern[:-1]                  # a URI prefix ending in "/"
    return any(v.startswith(prefix) and len(v) > len(prefix) for v in values)


def first_rule(policy: Policy, identity: Identity, method: str, path: str) -> Rule | None:
    """The first rule that allows ``identity`` to ``method`` ``path``; None: denied."""
    for rule in policy.rules:
        if rule.covers(method, path) and identity.matches(rule):
            return rule
    return None
