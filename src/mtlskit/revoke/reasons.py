"""Revocation reasons: the CRLReason codes of RFC 5280 5.3.1, named as users type them."""

from __future__ import annotations

import enum
import functools
from typing import TYPE_CHECKING

from mtlskit.errors import BadInput

if TYPE_CHECKING:
    from cryptography import x509


class RevocationReason(str, enum.Enum):
    """The reasons `mtlskit revoke --reason` accepts; the value is the CLI word.

    ``removeFromCRL`` (8) is for delta CRLs and ``aACompromise`` (10) for attribute
    certificates; mtlskit issues neither, so neither is offered.
    """

    UNSPECIFIED = "unspecified"
    KEY_COMPROMISE = "key-compromise"
    CA_COMPROMISE = "ca-compromise"
    AFFILIATION_CHANGED = "affiliation-changed"
    SUPERSEDED = "superseded"
    CESSATION_OF_OPERATION = "cessation-of-operation"
    CERTIFICATE_HOLD = "certificate-hold"
    PRIVILEGE_WITHDRAWN = "privilege-withdrawn"

    @property
    def x509_flag(self) -> x509.ReasonFlags:
        """The matching ``cryptography.x509.ReasonFlags`` member."""
        return _flags()[self]

    @property
    def code(self) -> int:
        """The CRLReason code (RFC 5280 5.3.1)."""
        return _CODES[self]

    @classmethod
    def parse(cls, text: str) -> "RevocationReason":
        """The reason named by ``text`` (case and ``_``/``-`` insensitive; the RFC's
        camelCase names such as ``keyCompromise`` are accepted too).

        Raises:
            BadInput: naming the valid words.
        """
        wanted = text.strip().lower().replace("_", "-")
        for reason in cls:
            if wanted in (reason.value, reason.value.replace("-", "")):
                return reason
        raise BadInput(f"unknown revocation reason {text!r}",
                       hint=f"choose one of: {', '.join(r.value for r in cls)}")

    @classmethod
    def from_flag(cls, flag: x509.ReasonFlags) -> "RevocationReason":
        for reason, candidate in _flags().items():
            if candidate is flag:
                return reason
        raise BadInput(f"revocation reason {flag.value} is not one mtlskit uses")


@functools.cache
def _flags() -> dict[RevocationReason, "x509.ReasonFlags"]:
    # cryptography.x509 is imported when a flag is first needed, not by `mtlskit --help`
    # (the revoke command's help lists the reasons).
    from cryptography import x509

    return {
        RevocationReason.UNSPECIFIED: x509.ReasonFlags.unspecified,
        RevocationReason.KEY_COMPROMISE: x509.ReasonFlags.key_compromise,
        RevocationReason.CA_COMPROMISE: x509.ReasonFlags.ca_compromise,
        RevocationReason.AFFILIATION_CHANGED: x509.ReasonFlags.affiliation_changed,
        RevocationReason.SUPERSEDED: x509.ReasonFlags.superseded,
        RevocationReason.CESSATION_OF_OPERATION: x509.ReasonFlags.cessation_of_operation,
        RevocationReason.CERTIFICATE_HOLD: x509.ReasonFlags.certificate_hold,
        RevocationReason.PRIVILEGE_WITHDRAWN: x509.ReasonFlags.privilege_withdrawn,
    }
_CODES = {
    RevocationReason.UNSPECIFIED: 0, RevocationReason.KEY_COMPROMISE: 1,
    RevocationReason.CA_COMPROMISE: 2, RevocationReason.AFFILIATION_CHANGED: 3,
    RevocationReason.SUPERSEDED: 4, RevocationReason.CESSATION_OF_OPERATION: 5,
    RevocationReason.CERTIFICATE_HOLD: 6, RevocationReason.PRIVILEGE_WITHDRAWN: 9,
}
