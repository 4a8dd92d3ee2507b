"""Issuance profiles, as data: key usage, EKU, lifetimes, required SAN kinds.

A profile decides everything about a certificate's usage; a CSR cannot choose its own
key usage, EKU or CA flag.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from mtlskit.errors import BadInput


@dataclasses.dataclass(frozen=True)
class Profile:
    name: str
    extended_key_usages: tuple[ObjectIdentifier, ...]
    default_days: int
    max_days: int
    requires_san: bool
    # TLS 1.2 RSA key exchange encrypts to the server's key (RFC 5246 7.4.7.1).
    key_encipherment_for_rsa: bool = False
    # RFC 6960 4.2.2.2.1: a delegated responder's certificate needs no revocation check.
    ocsp_nocheck: bool = False
    # A wildcard DNS SAN (*.example.com): servers only, see issue.policy.check_wildcards.
    wildcard_dns: bool = False
    # Lifetimes in hours, for short-lived profiles: they replace default_days / max_days.
    default_hours: int | None = None
    max_hours: int | None = None

    @property
    def default_lifetime(self) -> dt.timedelta:
        if self.default_hours is not None:
            return dt.timedelta(hours=self.default_hours)
        return dt.timedelta(days=self.default_days)

    @property
    def max_lifetime(self) -> dt.timedelta:
        if self.max_hours is not None:
            return dt.timedelta(hours=self.max_hours)
        return dt.timedelta(days=self.max_days)

    @property
    def is_client(self) -> bool:
        return ExtendedKeyUsageOID.CLIENT_AUTH in self.extended_key_usages

    @property
    def is_server(self) -> bool:
        return ExtendedKeyUsageOID.SERVER_AUTH in self.extended_key_usages


SERVER = Profile("server", (ExtendedKeyUsageOID.SERVER_AUTH,), default_days=90, max_days=397,
                 requires_san=True, key_encipherment_for_rsa=True, wildcard_dns=True)
CLIENT = Profile("client", (ExtendedKeyUsageOID.CLIENT_AUTH,), default_days=365, max_days=825,
                 requires_san=True)
PEER = Profile("peer", (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH),
               default_days=90, max_days=397, requires_san=True, key_encipherment_for_rsa=True)
OCSP = Profile("ocsp", (ExtendedKeyUsageOID.OCSP_SIGNING,), default_days=7, max_days=30,
               requires_san=False, ocsp_nocheck=True)

PROFILES = {p.name: p for p in (SERVER, CLIENT, PEER, OCSP)}
LEAF_PROFILES = ("server", "client", "peer")


def get_profile(name: str, allowed: tuple[str, ...] = LEAF_PROFILES) -> Profile:
    if name not in allowed:
        raise BadInput(f"unknown profile {name!r}", hint=f"choose one of: {', '.join(allowed)}")
    return PROFILES[name]
