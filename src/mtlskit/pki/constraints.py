"""Name constraints (RFC 5280 4.2.1.10), matched as OpenSSL matches them. Pure; no I/O.

One matcher for both judges of mtlskit: the issuer (which refuses to sign a name outside
its CA's constraints) and ``verify`` (which must agree with ``openssl verify``). Like
OpenSSL, a subject CN that looks like a DNS name is a DNS name for the constraints
(``subject_dns_id``); the issuer checks it always, ``verify`` when the leaf has no DNS SAN
(OpenSSL's rule, ``check_name_constraints`` in x509_vfy.c).
"""

from __future__ import annotations

import ipaddress
import re

from cryptography import x509

from mtlskit.pki.names import general_name_text

# OpenSSL's cn2dnsid: letters, digits, '_' and internal '-'/'.'; no '..', '.-', '-.';
# at least two labels ("CN=sometld" is not a DNS name for the constraints).
_CN_LABEL = re.compile(r"\A[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?\Z")


def cn_dns_id(common_name: str) -> str | None:
    """The DNS name a subject CN stands for under name constraints, or None when OpenSSL
    would not read it as a DNS name."""
    text = common_name.rstrip("\0")
    labels = text.split(".")
    if len(labels) < 2 or not all(_CN_LABEL.match(label) for label in labels):
        return None
    return text


def constraints_of(certificates: list[x509.Certificate]) -> list[x509.NameConstraints]:
    """The name constraints of every certificate given that has some."""
    found = []
    for certificate in certificates:
        try:
            found.append(certificate.extensions.get_extension_for_class(x509.NameConstraints).value)
        except x509.ExtensionNotFound:
            continue
        except (ValueError, TypeError, x509.DuplicateExtension):   # refused by path validation
            continue
    return found


def permits(constraints: x509.NameConstraints, name: x509.GeneralName) -> bool:
    """Is ``name`` inside the permitted subtrees of its form (when there are any) and
    outside every excluded subtree of its form?"""
    permitted = [base for base in constraints.permitted_subtrees or [] if type(base) is type(name)]
    if permitted and not any(matches(name, base) for base in permitted):
        return False
    excluded = [base for base in constraints.excluded_subtrees or [] if type(base) is type(name)]
    return not any(matches(name, base) for base in excluded)


def matches(name: x509.GeneralName, base: x509.GeneralName) -> bool:
    """Is ``name`` within the subtree ``base`` (both of the same form)?"""
    if isinstance(name, x509.DNSName):
        return dns_within(name.value, base.value)
    if isinstance(name, x509.IPAddress):
        return _ip_within(name.value, base.value)
    if isinstance(name, x509.RFC822Name):
        return _email_within(name.value, base.value)
    if isinstance(name, x509.UniformResourceIdentifier):
        return _uri_within(name.value, base.value)
    if isinstance(name, x509.DirectoryName):
        return _dn_within(name.value, base.value)
    return False   # other forms: never within (so a permitted subtree of that form refuses)


def dns_within(host: str, base: str) -> bool:
    """RFC 5280: zero or more labels added on the left; a base with a leading '.' (not in
    the RFC, an OpenSSL and Go reading) needs at least one."""
    host, base = host.lower(), base.lower()
    if not base:
        return True
    if base.startswith("."):
        return len(host) > len(base) and host.endswith(base)
    return host == base or host.endswith("." + base)


def _ip_within(address, network) -> bool:
    if not isinstance(network, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return False
    if isinstance(address, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return False
    return address.version == network.version and address in network


def _email_within(mailbox: str, base: str) -> bool:
    """A mailbox (base with '@': local part case-sensitive), a host, or '.domain' (any
    host under it)."""
    local, at, host = mailbox.rpartition("@")
    if not at:
        return False
    if "@" in base:
        base_local, _, base_host = base.rpartition("@")
        return (not base_local or base_local == local) and host.lower() == base_host.lower()
    if base.startswith("."):
        return host.lower().endswith(base.lower())
    return host.lower() == base.lower()


def _uri_within(uri: str, base: str) -> bool:
    """The URI's host (RFC 3986 authority, without userinfo and port) against a host or
    '.domain'; a URI without a host is never within."""
    _, sep, rest = uri.partition("://")
    host = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0].rpartition("@")[2]
    host = host.rsplit(":", 1)[0] if not host.startswith("[") else host
    if not sep or not host:
        return False
    if base.startswith("."):
        return host.lower().endswith(base.lower())
    return host.lower() == base.lower()


def _dn_within(name: x509.Name, base: x509.Name) -> bool:
    """The base's RDNs are the first RDNs of the name (compared as encoded)."""
    name_rdns, base_rdns = list(name.rdns), list(base.rdns)
    return len(base_rdns) <= len(name_rdns) and name_rdns[:len(base_rdns)] == base_rdns


def describe(constraints: x509.NameConstraints) -> str:
    """`DNS:example.com, IP:10.0.0.0/8` for a message; 'none' when nothing is permitted."""
    return ", ".join(general_name_text(n) for n in constraints.permitted_subtrees or []) or "none"
