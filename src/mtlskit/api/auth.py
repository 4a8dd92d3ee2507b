"""Who is calling the service, and what they may do.

A :class:`Principal` is a caller the service has authenticated: by a bearer token of the
API (``via="token"``, :mod:`mtlskit.store.api_tokens`), by a client certificate of the CA
on `serve --tls-port` (``via="certificate"``), or by a web UI session (``via="session"``).
Its role is one of :data:`ROLES`, lowest first; each role includes those before it:

    read    list, search, show, CRL status, deployments
    issue   + issue, sign a CSR, renew
    revoke  + revoke
    admin   + everything (today: nothing more than revoke on the REST API)

Client certificates map to roles in ``mtlskit.toml`` (``Settings.roles``)::

    [roles]
    admin = ["alice"]            # certificate NAMEs (their CN)
    read  = ["ou:Ops"]           # or one of their OUs

A certificate matched by several entries gets the highest role. Only certificates with the
clientAuth EKU count (the TLS listener verifies the chain with purpose ANY), and
:func:`verified_principal` also asks the inventory that the certificate is still live
(not revoked, not expired): a revocation takes effect on the next request.

No FastAPI here: the REST API and the web UI both use this module.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from typing import TYPE_CHECKING

from mtlskit.config import OU_SELECTOR, ROLES
from mtlskit.errors import PolicyViolation

if TYPE_CHECKING:
    from cryptography import x509

    from mtlskit.config import Settings

VIAS = ("token", "certificate", "session")


class Unauthenticated(PolicyViolation):
    """No credentials, or credentials that do not identify anyone now (HTTP 401)."""

    code = "unauthenticated"


class Forbidden(PolicyViolation):
    """An authenticated caller whose role does not allow the request (HTTP 403)."""

    code = "forbidden"


@dataclasses.dataclass(frozen=True)
class Principal:
    """An authenticated caller.

    Attributes:
        name: the token's name, the certificate's NAME (CN), or the session's user.
        role: one of ROLES.
        via: "token", "certificate" or "session".
    """

    name: str
    role: str
    via: str

    @property
    def audit_by(self) -> str:
        """The ``by`` of the audit events of what this caller changes: ``<via>:<name>``."""
        return f"{self.via}:{self.name}"


def role_rank(role: str) -> int:
    """0 for "read" up to 3 for "admin".

    Raises:
        ValueError: not a role.
    """
    return ROLES.index(role)


def allows(principal: Principal | None, role: str) -> bool:
    """Whether ``principal`` may do what needs ``role`` (an unknown role allows nothing).

    Raises:
        ValueError: ``role`` (what the caller checks for) is not a role: a programming error.
    """
    needed = role_rank(role)
    if principal is None or principal.role not in ROLES:
        return False
    return role_rank(principal.role) >= needed


def principal_for_certificate(certificate: "x509.Certificate", settings: "Settings") -> Principal | None:
    """The principal a client certificate maps to by ``[roles]``, or None.

    Pure: checks the clientAuth EKU and the mapping only. Whether the CA issued it is the
    TLS layer's job; whether it is still live is :func:`verified_principal`'s.
    """
    if not has_client_auth(certificate):
        return None
    name = common_name(certificate)
    units = set(organizational_units(certificate))
    best: str | None = None
    for role, selectors in settings.roles:
        for selector in selectors:
            if _selects(selector, name, units) and (best is None or role_rank(role) > role_rank(best)):
                best = role
    if best is None:
        return None
    return Principal(name or ",".join(sorted(units)), best, "certificate")


def verified_principal(certificate: "x509.Certificate", settings: "Settings", inventory,
                       now: dt.datetime) -> Principal | None:
    """:func:`principal_for_certificate`, for a certificate the inventory holds and that is
    live at ``now`` (not revoked, not expired, not yet valid); else None.

    Args:
        certificate: the client certificate the TLS layer verified against the CA.
        inventory: the Inventory (its ``by_fingerprint``).
    """
    if certificate_refusal(certificate, inventory, now) is not None:
        return None
    return principal_for_certificate(certificate, settings)


def certificate_refusal(certificate: "x509.Certificate", inventory, now: dt.datetime) -> str | None:
    """Why a TLS-verified client certificate may not authenticate anyone, or None."""
    from cryptography.hazmat.primitives import serialization

    if not has_client_auth(certificate):
        return "the client certificate is not for client authentication (no clientAuth EKU)"
    der = certificate.public_bytes(serialization.Encoding.DER)
    record = inventory.by_fingerprint(hashlib.sha256(der).hexdigest())
    if record is None:
        return "the client certificate is not in this CA's inventory"
    status = record.status_at(now).value
    if status != "valid":
        return f"the client certificate is {status}"
    return None


def has_client_auth(certificate: "x509.Certificate") -> bool:
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    try:
        usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False  # our CA always states the EKU; a certificate without one is not ours to trust here
    return ExtendedKeyUsageOID.CLIENT_AUTH in usages


def common_name(certificate: "x509.Certificate") -> str | None:
    from cryptography.x509.oid import NameOID

    values = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if len(values) == 1 else None  # two CNs: no name to trust


def organizational_units(certificate: "x509.Certificate") -> list[str]:
    from cryptography.x509.oid import NameOID

    return [str(a.value) for a in certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)]


def _selects(selector: str, name: str | None, units: set[str]) -> bool:
    if selector.startswith(OU_SELECTOR):
        return selector[len(OU_SELECTOR):] in units
    return name is not None and selector == name
