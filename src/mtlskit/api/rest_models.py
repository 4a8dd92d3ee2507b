"""The JSON bodies of the REST API (requests and responses), as pydantic models.

Requests are strict: unknown fields, wrong types (``"30"`` for a number, ``1`` for a
string) and oversized values are refused (422) before any workflow runs; what the CLI
would refuse (a NAME with a newline, a SAN outside the grammar) is refused by the same
workflow code the CLI calls.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from mtlskit.revoke.reasons import RevocationReason

MAX_TEXT = 1024
MAX_SANS_PER_KIND = 100
MAX_TARGETS = 10_000
MAX_PEM = 16 * 1024
Profile = Literal["server", "client", "peer"]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class SubjectFields(_Request):
    """C, ST, L, O, OU; ``[subject]`` of mtlskit.toml fills the fields not given ("" clears one)."""

    country: Optional[str] = Field(None, max_length=MAX_TEXT)
    state: Optional[str] = Field(None, max_length=MAX_TEXT)
    locality: Optional[str] = Field(None, max_length=MAX_TEXT)
    org: Optional[str] = Field(None, max_length=MAX_TEXT)
    org_unit: Optional[str] = Field(None, max_length=MAX_TEXT)


class Lifetime(_Request):
    days: Optional[int] = Field(None, description="lifetime in days (default: the profile's)")
    hours: Optional[int] = Field(None, description="lifetime in hours, instead of days")


class Pkcs12Options(_Request):
    password: str = Field(min_length=1, max_length=MAX_TEXT, pattern=r"^[^\x00-\x1f\x7f]+$",
                          description="the bundle's password (yours: never stored); no control characters")
    profile: Literal["modern", "legacy"] = Field("modern", description="modern (AES-256) or legacy (3DES, iOS/macOS)")


class IssueRequest(Lifetime):
    """Body of ``POST /api/v1/certificates``: a new key and its certificate, as `mtlskit issue`."""

    profile: Profile
    name: str = Field(min_length=1, max_length=MAX_TEXT, description="subject CN and inventory NAME")
    dns: list[str] = Field([], max_length=MAX_SANS_PER_KIND)
    ip: list[str] = Field([], max_length=MAX_SANS_PER_KIND)
    email: list[str] = Field([], max_length=MAX_SANS_PER_KIND)
    uri: list[str] = Field([], max_length=MAX_SANS_PER_KIND)
    subject: SubjectFields = SubjectFields()
    key_type: str = Field("ec-p256", max_length=32, description="ec-p256, ec-p384, rsa-2048|3072|4096, ed25519")
    pkcs12: Optional[Pkcs12Options] = Field(None, description="answer a PKCS#12 bundle (base64) instead of PEM files")


class SignRequest(Lifetime):
    """Body of ``POST /api/v1/sign``: a certificate for a CSR, as `mtlskit sign`."""

    csr: str = Field(min_length=1, max_length=MAX_PEM, description="PEM certificate signing request")
    profile: Profile
    name: Optional[str] = Field(None, min_length=1, max_length=MAX_TEXT,
                                description="NAME (default: the CSR's CN if it is a valid NAME)")
    subject: SubjectFields = SubjectFields()


class RenewRequest(_Request):
    """Body of ``POST /api/v1/certificates/{target}/renew``."""

    csr: Optional[str] = Field(None, min_length=1, max_length=MAX_PEM,
                               description="PEM CSR of the new key: the successor is returned, no file is written")
    new_key: bool = Field(False, description="a new key of the same type, handed over in this answer only "
                                             "(private_key), no file written")
    revoke_old: bool = Field(False, description="without csr or new_key, as `mtlskit renew [--revoke-old]`: new "
                                                "files where the certificate's were written (or into its "
                                                "deployments); with this, the predecessor is revoked (superseded)")


class RevokeRequest(BaseModel):
    """Body of ``POST /api/v1/revocations``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    targets: list[str] = Field(min_length=1, max_length=MAX_TARGETS,
                               description="SERIAL (hex) or NAME of each certificate, or serial:HEX / "
                                           "name:NAME (a bare one that is both is refused); one transaction for all")
    reason: str = Field(RevocationReason.UNSPECIFIED.value, max_length=64,
                        description=f"one of: {', '.join(r.value for r in RevocationReason)}")
    at: Optional[dt.datetime] = Field(None, description="revocation date, ISO 8601 (default: now; naive is UTC)")


class RevokedCertificate(BaseModel):
    serial: str
    issuer: str
    name: str
    revoked_at: dt.datetime
    reason: str


class DeploymentRefresh(BaseModel):
    server: str
    directory: str
    status: str
    message: str


class RevokeResponse(BaseModel):
    revoked: list[RevokedCertificate]
    crl_numbers: dict[str, int] = Field(description="the CRL number just signed, by CA name")
    deployments: list[DeploymentRefresh]
