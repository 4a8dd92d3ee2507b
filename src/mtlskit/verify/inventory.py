"""Revocation as the inventory knows it, for certificates issued by this home's CA.

The database is the source of truth (DESIGN.md): a certificate revoked a minute ago
is revoked here even before the next CRL is published.
"""

from __future__ import annotations

import datetime as dt
from typing import Callable

from cryptography import x509

from mtlskit.verify import crl
from mtlskit.verify.checks import describe
from mtlskit.verify.findings import Finding, error

Lookup = Callable[[str, int], object]  # (issuer name, serial) -> CertificateRecord | None
StoredCrl = Callable[[str], bytes | None]  # CA name -> the DER of its current CRL, None if never published


class InventorySource:
    """Looks each certificate of the path up by (our CA name, serial), and checks the dates
    of the CRLs this home publishes for the CAs of the path (what deployments serve)."""

    authoritative = True  # the database is the source of truth: no need to ask the network

    def __init__(self, ca_certificates: dict[str, x509.Certificate], lookup: Lookup,
                 stored_crl: StoredCrl | None = None) -> None:
        self.ca_certificates = ca_certificates
        self.lookup = lookup
        self.stored_crl = stored_crl

    def __call__(self, path: list[x509.Certificate], at: dt.datetime) -> list[Finding]:
        found: list[Finding] = []
        for cert, issuer in zip(path, path[1:]):
            name = next((n for n, c in self.ca_certificates.items() if c == issuer), None)
            found += self._crl_dates(name, issuer, at)
            record = self.lookup(name, cert.serial_number) if name else None
            if record is not None and getattr(record, "status", None) == "revoked":
                when = getattr(record, "revoked_at", None)
                reason = getattr(record, "revocation_reason", None)
                found.append(error("revoked", f"{describe(cert)} (serial {cert.serial_number:X}) is revoked in the "
                                   f"inventory{f' since {when:%Y-%m-%d %H:%M} UTC' if when else ''}"
                                   f"{f' (reason: {reason})' if reason else ''}",
                                   "issue a new certificate; a revoked one cannot be used again"))
        return found

    def _crl_dates(self, name: str | None, issuer: x509.Certificate, at: dt.datetime) -> list[Finding]:
        der = self.stored_crl(name) if self.stored_crl and name else None
        if der is None:
            return []
        return crl.check_published(x509.load_der_x509_crl(der), describe(issuer), at,
                                   " published by this CA home")

    def covers(self, path: list[x509.Certificate]) -> bool:
        return path[-1] in self.ca_certificates.values()
