"""The inventory's tables (SQLAlchemy 2). Changes go through numbered Alembic migrations."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger, DateTime, Index, Integer, LargeBinary, String, Text, UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class CertificateRow(Base):
    """One issued certificate. Status is `valid` or `revoked`; `expired` is derived from not_after."""

    __tablename__ = "certificates"
    __table_args__ = (
        UniqueConstraint("issuer", "serial", name="uq_certificates_issuer_serial"),
        Index("ix_certificates_name", "name"),
        Index("ix_certificates_not_after", "not_after"),
        Index("ix_certificates_status", "issuer", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    issuer: Mapped[str] = mapped_column(String(64))          # CA name: "root" or "intermediate"
    serial: Mapped[str] = mapped_column(String(42))          # lower-case hex, no leading zeros
    name: Mapped[str] = mapped_column(String(255))           # the NAME given at issuance (subject CN)
    subject: Mapped[str] = mapped_column(Text)               # RFC 4514 string
    sans: Mapped[str] = mapped_column(Text)                  # JSON list of "DNS:x", "IP:y", ...
    profile: Mapped[str] = mapped_column(String(32))
    key_type: Mapped[str] = mapped_column(String(32))
    not_before: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    not_after: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), default="valid")
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revocation_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    fingerprint_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    pem: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    # where `issue` wrote the files (absolute), for `renew` and `agent` (0004_lifecycle)
    directory: Mapped[str | None] = mapped_column(Text, nullable=True)
    # the serial (hex) of the certificate that renewed this one (0004_lifecycle)
    superseded_by: Mapped[str | None] = mapped_column(String(42), nullable=True)


class AuditEvent(Base):
    """Every change (issue, revoke, renew, crl, deploy) writes one, in the same transaction."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    action: Mapped[str] = mapped_column(String(32))
    issuer: Mapped[str | None] = mapped_column(String(64), nullable=True)
    serial: Mapped[str | None] = mapped_column(String(42), nullable=True)
    detail: Mapped[str] = mapped_column(Text, default="{}")  # JSON, never a secret


class CrlState(Base):
    """Per CA: the last CRL number used and the last CRL published."""

    __tablename__ = "crl_state"

    issuer: Mapped[str] = mapped_column(String(64), primary_key=True)
    crl_number: Mapped[int] = mapped_column(Integer, default=0)
    this_update: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    next_update: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    der: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    entry_count: Mapped[int | None] = mapped_column(Integer, nullable=True)  # revoked entries in der (0002_crl)
    # the crl_number last written to HOME/crl/ and every deployment; smaller: pending (0003)
    published_number: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Deployment(Base):
    """A web-server configuration written by `mtlskit deploy`, refreshed on every CRL change."""

    __tablename__ = "deployments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    server: Mapped[str] = mapped_column(String(16))          # nginx | apache | haproxy
    name: Mapped[str] = mapped_column(String(255))           # server certificate name
    directory: Mapped[str] = mapped_column(Text, unique=True)
    revocation: Mapped[str] = mapped_column(String(8))       # crl | ocsp | none
    reload_command: Mapped[str | None] = mapped_column(Text, nullable=True)
    options: Mapped[str] = mapped_column(Text, default="{}")  # JSON of the deploy flags
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class CrlEntry(Base):
    """The DER of each revoked certificate's CRL entry, encoded once when it is revoked.

    A derived cache of ``certificates`` (status ``revoked``): the CRL publisher checks the
    count against the certificates table and re-encodes an issuer's entries when they
    differ. Clustered by (issuer, serial) so one issuer's entries are read in one range scan.
    """

    __tablename__ = "crl_entries"
    __table_args__ = {"sqlite_with_rowid": False}

    issuer: Mapped[str] = mapped_column(String(64), primary_key=True)
    serial: Mapped[str] = mapped_column(String(42), primary_key=True)  # as in certificates.serial
    der: Mapped[bytes] = mapped_column(LargeBinary)


class EnrollmentToken(Base):
    """A single-use token made by `mtlskit token create`; only its SHA-256 is stored."""

    __tablename__ = "enrollment_tokens"
    __table_args__ = (UniqueConstraint("token_sha256", name="uq_enrollment_tokens_sha256"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    token_sha256: Mapped[str] = mapped_column(String(64))
    profile: Mapped[str] = mapped_column(String(32))
    request: Mapped[str] = mapped_column(Text)                 # JSON: SANs, subject fields, lifetime
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    used_serial: Mapped[str | None] = mapped_column(String(42), nullable=True)


class ApiToken(Base):
    """A bearer token of the REST API with its role (0005_service); only its SHA-256 is stored."""

    __tablename__ = "api_tokens"
    __table_args__ = (UniqueConstraint("name", name="uq_api_tokens_name"),
                      UniqueConstraint("token_sha256", name="uq_api_tokens_sha256"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))             # read | issue | revoke | admin
    token_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ChangeCounter(Base):
    """A counter per topic, bumped inside each transaction that changes the topic (0005_service)."""

    __tablename__ = "change_counters"

    topic: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)
