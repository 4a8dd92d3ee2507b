"""The inventory: a narrow interface with named queries over the database.

The database is the source of truth for what was issued and what is revoked; files
are exports. Each change writes an audit event in the same transaction.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import enum
import json
from typing import Iterator, Sequence

from sqlalchemy import Engine, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mtlskit.errors import AlreadyExists, NotFound
from mtlskit.store.bulk import BulkInsert
from mtlskit.store.db import make_engine, migrate
from mtlskit.store.models import AuditEvent, CertificateRow


class Status(str, enum.Enum):
    """What a certificate is at a given time; only ``revoked`` is stored, the rest is
    derived from its validity period."""

    VALID = "valid"
    NOT_YET_VALID = "not-yet-valid"
    EXPIRED = "expired"
    REVOKED = "revoked"


# Signed and neither revoked nor expired: what revoking by NAME designates.
LIVE = frozenset({Status.VALID, Status.NOT_YET_VALID})


@dataclasses.dataclass(frozen=True)
class CertificateRecord:
    """One issued certificate, as the inventory knows it."""

    issuer: str
    serial: int
    name: str
    subject: str
    sans: tuple[str, ...]
    profile: str
    key_type: str
    not_before: dt.datetime
    not_after: dt.datetime
    fingerprint_sha256: str
    pem: str
    status: str = Status.VALID.value
    revoked_at: dt.datetime | None = None
    revocation_reason: str | None = None

    @property
    def serial_hex(self) -> str:
        return format(self.serial, "x")

    def status_at(self, now: dt.datetime) -> Status:
        """Revoked wins; then expired (from not_after), not yet valid (from not_before)."""
        if self.status == Status.REVOKED.value:
            return Status.REVOKED
        if self.not_after <= now:
            return Status.EXPIRED
        return Status.NOT_YET_VALID if self.not_before > now else Status.VALID

    def summary(self, now: dt.datetime) -> dict:
        """What `mtlskit list/show --json` and `GET /api/v1/certificates/...` print (no PEM)."""
        return {"name": self.name, "serial": self.serial_hex, "issuer": self.issuer,
                "profile": self.profile, "status": self.status_at(now).value,
                "subject": self.subject, "sans": list(self.sans), "key_type": self.key_type,
                "not_before": self.not_before, "not_after": self.not_after,
                "days_left": (self.not_after - now).days,
                "revoked_at": self.revoked_at, "revocation_reason": self.revocation_reason,
                "fingerprint_sha256": self.fingerprint_sha256}

    def row_values(self, created_at: dt.datetime) -> tuple:
        """The ``certificates`` row, as values in the order of CERTIFICATE_COLUMNS."""
        return (self.issuer, self.serial_hex, self.name, self.subject,
                json.dumps(list(self.sans)), self.profile, self.key_type, self.not_before,
                self.not_after, self.status, self.revoked_at, self.revocation_reason,
                self.fingerprint_sha256, self.pem, created_at)


CERTIFICATE_COLUMNS = ("issuer", "serial", "name", "subject", "sans", "profile", "key_type",
                       "not_before", "not_after", "status", "revoked_at", "revocation_reason",
                       "fingerprint_sha256", "pem", "created_at")
AUDIT_COLUMNS = ("at", "action", "issuer", "serial", "detail")
_DETAIL_JSON = json.JSONEncoder(default=str, sort_keys=True)  # one encoder, not one per event


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    # SQLite hands back naive datetimes; everything we store is UTC.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.timezone.utc)


def record_from_row(row: CertificateRow) -> CertificateRecord:
    return CertificateRecord(
        issuer=row.issuer, serial=int(row.serial, 16), name=row.name, subject=row.subject,
        sans=tuple(json.loads(row.sans)), profile=row.profile, key_type=row.key_type,
        not_before=_utc(row.not_before), not_after=_utc(row.not_after),
        fingerprint_sha256=row.fingerprint_sha256, pem=row.pem, status=row.status,
        revoked_at=_utc(row.revoked_at), revocation_reason=row.revocation_reason,
    )


def audit_row(action: str, at: dt.datetime, issuer: str | None = None,
              serial: int | None = None, **detail) -> dict:
    return dict(zip(AUDIT_COLUMNS, audit_values(action, at, issuer, serial, detail)))


def audit_values(action: str, at: dt.datetime, issuer: str | None, serial: int | None,
                 detail: dict) -> tuple:
    """The ``audit_events`` row, as values in the order of AUDIT_COLUMNS."""
    return (at, action, issuer, None if serial is None else format(serial, "x"),
            _DETAIL_JSON.encode(detail))


_INSERT_CERTIFICATES = BulkInsert(CertificateRow.__table__, CERTIFICATE_COLUMNS)
_INSERT_EVENTS = BulkInsert(AuditEvent.__table__, AUDIT_COLUMNS)


class Inventory:
    """Named queries and changes over the inventory database.

    Use ``transaction()`` to group changes; every ``add_*``/``set_*`` call records its
    audit event inside the same transaction.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, database_url: str) -> "Inventory":
        engine = make_engine(database_url)
        migrate(engine)
        return cls(engine)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        with Session(self.engine) as session, session.begin():
            yield session

    # --- changes -----------------------------------------------------------------

    def add_certificates(self, records: Sequence[CertificateRecord], at: dt.datetime,
                         action: str = "issue", session: Session | None = None) -> None:
        """Record issued certificates and one audit event each, atomically.

        Raises:
            AlreadyExists: a serial is already used by that issuer (never expected with
                random 64-bit+ serials, but the constraint is what makes it impossible).
        """
        if not records:
            return
        certificates = [r.row_values(at) for r in records]
        events = [audit_values(action, at, r.issuer, r.serial, {"name": r.name, "profile": r.profile})
                  for r in records]
        with self._session(session) as tx:
            connection = tx.connection()
            try:
                _INSERT_CERTIFICATES(connection, certificates)
            except IntegrityError:
                raise AlreadyExists("a certificate with the same issuer and serial or "
                                    "fingerprint is already in the inventory") from None
            _INSERT_EVENTS(connection, events)

    def record_event(self, action: str, at: dt.datetime, issuer: str | None = None,
                     serial: int | None = None, session: Session | None = None, **detail) -> None:
        with self._session(session) as tx:
            tx.execute(insert(AuditEvent), [audit_row(action, at, issuer, serial, **detail)])

    @contextlib.contextmanager
    def _session(self, session: Session | None) -> Iterator[Session]:
        if session is not None:
            yield session
        else:
            with self.transaction() as tx:
                yield tx

    # --- queries -----------------------------------------------------------------

    def get(self, issuer: str, serial: int) -> CertificateRecord | None:
        with Session(self.engine) as s:
            row = s.scalars(select(CertificateRow).where(
                CertificateRow.issuer == issuer, CertificateRow.serial == format(serial, "x"))).first()
            return record_from_row(row) if row else None

    def by_serial(self, serial: int) -> list[CertificateRecord]:
        with Session(self.engine) as s:
            rows = s.scalars(select(CertificateRow).where(CertificateRow.serial == format(serial, "x")))
            return [record_from_row(r) for r in rows]

    def by_name(self, name: str) -> list[CertificateRecord]:
        with Session(self.engine) as s:
            rows = s.scalars(select(CertificateRow).where(CertificateRow.name == name)
                             .order_by(CertificateRow.not_before, CertificateRow.id))
            return [record_from_row(r) for r in rows]

    def by_fingerprint(self, fingerprint_sha256: str) -> CertificateRecord | None:
        with Session(self.engine) as s:
            row = s.scalars(select(CertificateRow).where(
                CertificateRow.fingerprint_sha256 == fingerprint_sha256.lower())).first()
            return record_from_row(row) if row else None

    def find(self, serial_or_name: str) -> list[CertificateRecord]:
        """Certificates whose NAME is the argument, or whose serial it is (hex, optional colons/0x)."""
        found = self.by_name(serial_or_name)
        serial = parse_serial(serial_or_name)
        if serial is not None:
            seen = {(r.issuer, r.serial) for r in found}
            found += [r for r in self.by_serial(serial) if (r.issuer, r.serial) not in seen]
        return found

    def find_one(self, serial_or_name: str) -> list[CertificateRecord]:
        found = self.find(serial_or_name)
        if not found:
            raise NotFound(f"{serial_or_name}: no certificate with this name or serial in the inventory",
                           hint="run `mtlskit list` to see what was issued")
        return found

    def query(self, now: dt.datetime, status: Status | None = None,
              expiring_before: dt.datetime | None = None, profile: str | None = None,
              issuer: str | None = None, limit: int | None = None) -> list[CertificateRecord]:
        """The certificates matching every given filter, soonest expiry first."""
        stmt = select(CertificateRow).order_by(CertificateRow.not_after, CertificateRow.id)
        if status is Status.REVOKED:
            stmt = stmt.where(CertificateRow.status == Status.REVOKED.value)
        elif status is Status.EXPIRED:
            stmt = stmt.where(CertificateRow.status != Status.REVOKED.value,
                              CertificateRow.not_after <= now)
        elif status is Status.VALID:
            stmt = stmt.where(CertificateRow.status != Status.REVOKED.value,
                              CertificateRow.not_before <= now, CertificateRow.not_after > now)
        elif status is Status.NOT_YET_VALID:
            stmt = stmt.where(CertificateRow.status != Status.REVOKED.value,
                              CertificateRow.not_before > now, CertificateRow.not_after > now)
        if expiring_before is not None:  # valid ones only
            stmt = stmt.where(CertificateRow.status != Status.REVOKED.value,
                              CertificateRow.not_before <= now, CertificateRow.not_after > now,
                              CertificateRow.not_after <= expiring_before)
        if profile:
            stmt = stmt.where(CertificateRow.profile == profile)
        if issuer:
            stmt = stmt.where(CertificateRow.issuer == issuer)
        if limit:
            stmt = stmt.limit(limit)
        with Session(self.engine) as s:
            return [record_from_row(r) for r in s.scalars(stmt)]

    def expiring(self, now: dt.datetime, before: dt.datetime) -> list[CertificateRecord]:
        return self.query(now, expiring_before=before)

    def count(self) -> int:
        with Session(self.engine) as s:
            return s.scalar(select(func.count()).select_from(CertificateRow)) or 0

    def events(self, limit: int = 100) -> list[dict]:
        with Session(self.engine) as s:
            rows = s.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit))
            return [{"id": e.id, "at": _utc(e.at), "action": e.action, "issuer": e.issuer,
                     "serial": e.serial, "detail": json.loads(e.detail)} for e in rows]


def parse_serial(text: str) -> int | None:
    """A serial as users paste it: hex with optional ``0x`` or colons; None if not hex."""
    cleaned = text.strip().lower().removeprefix("0x").replace(":", "")
    if not cleaned or len(cleaned) > 40 or any(c not in "0123456789abcdef" for c in cleaned):
        return None
    return int(cleaned, 16)
