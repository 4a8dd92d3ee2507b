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

from sqlalchemy import Engine, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mtlskit.audit_actor import current_by
from mtlskit.errors import AlreadyExists, AmbiguousTarget, BadInput, NotFound
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


_REVOKED = Status.REVOKED.value  # an enum member's .value is a slow descriptor (3.11)

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
    directory: str | None = None        # absolute; where its files were written (None: nowhere)
    superseded_by: int | None = None    # the serial of the certificate that renewed it

    @property
    def serial_hex(self) -> str:
        return format(self.serial, "x")

    def status_at(self, now: dt.datetime) -> Status:
        """Revoked wins; then expired (from not_after), not yet valid (from not_before)."""
        if self.status == _REVOKED:
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
                "hours_left": (self.not_after - now) // dt.timedelta(hours=1),
                "revoked_at": self.revoked_at, "revocation_reason": self.revocation_reason,
                "fingerprint_sha256": self.fingerprint_sha256,
                "superseded_by": None if self.superseded_by is None else format(self.superseded_by, "x")}

    def row_values(self, created_at: dt.datetime) -> tuple:
        """The ``certificates`` row, as values in the order of CERTIFICATE_COLUMNS."""
        return (self.issuer, self.serial_hex, self.name, self.subject,
                json.dumps(list(self.sans)), self.profile, self.key_type, self.not_before,
                self.not_after, self.status, self.revoked_at, self.revocation_reason,
                self.fingerprint_sha256, self.pem, created_at, self.directory,
                None if self.superseded_by is None else format(self.superseded_by, "x"))


CERTIFICATE_COLUMNS = ("issuer", "serial", "name", "subject", "sans", "profile", "key_type",
                       "not_before", "not_after", "status", "revoked_at", "revocation_reason",
                       "fingerprint_sha256", "pem", "created_at", "directory", "superseded_by")
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
        directory=row.directory,
        superseded_by=None if row.superseded_by is None else int(row.superseded_by, 16),
    )


def audit_row(action: str, at: dt.datetime, issuer: str | None = None,
              serial: int | None = None, **detail) -> dict:
    return dict(zip(AUDIT_COLUMNS, audit_values(action, at, issuer, serial, detail)))


def audit_values(action: str, at: dt.datetime, issuer: str | None, serial: int | None,
                 detail: dict) -> tuple:
    """The ``audit_events`` row, as values in the order of AUDIT_COLUMNS (with the ``by``
    of :func:`mtlskit.audit_actor.acting_as` when a service caller acts)."""
    by = current_by()
    if by is not None and "by" not in detail:
        detail = {**detail, "by": by}
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
        self._db = None

    @property
    def db(self):
        """The inventory's :class:`mtlskit.store.sql.Database` (plain DB-API SQL)."""
        if self._db is None:
            from mtlskit.store.sql import Database

            self._db = Database.open(self.engine.url.render_as_string(hide_password=False))
        return self._db

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

    def mark_revoked(self, session: Session, records: Sequence[CertificateRecord], at: dt.datetime,
                     reason: str, now: dt.datetime) -> list[CertificateRecord]:
        """Inside ``session``: set each certificate revoked (``at``, ``reason``) and record one
        "revoke" audit event each. Returns those that were revoked already (by another
        process since they were read): the caller refuses, rolling everything back."""
        table = CertificateRow.__table__
        already = []
        for record in records:
            changed = session.execute(
                update(table)
                .where(table.c.issuer == record.issuer, table.c.serial == record.serial_hex,
                       table.c.status != Status.REVOKED.value)
                .values(status=Status.REVOKED.value, revoked_at=at, revocation_reason=reason))
            if changed.rowcount != 1:
                already.append(record)
        if not already:
            session.execute(insert(AuditEvent), [
                audit_row("revoke", now, r.issuer, r.serial, name=r.name, reason=reason,
                          revoked_at=at.isoformat()) for r in records])
        return already

    def mark_superseded(self, session: Session, old: CertificateRecord, new: CertificateRecord,
                        at: dt.datetime) -> bool:
        """Inside ``session``: mark ``old`` superseded by ``new`` and record one "renew" audit
        event. False (and nothing changed) when ``old`` was revoked or superseded meanwhile
        (by another process since it was read): the caller refuses, rolling back."""
        return not self.mark_superseded_many(session, [(old, new)], at)

    def mark_superseded_many(self, session: Session, pairs: Sequence[tuple[CertificateRecord, CertificateRecord]],
                             at: dt.datetime) -> list[CertificateRecord]:
        """Inside ``session``: mark each old certificate superseded by its new one, one
        "renew" audit event each (one statement for all). Returns the old ones that were
        revoked or superseded meanwhile: the caller refuses, rolling everything back."""
        if not pairs:
            return []
        if self._supersede_sqlite(session, pairs):
            failed = []
        else:
            failed = self._supersede_checked(session, pairs)
        if not failed:
            _INSERT_EVENTS(session.connection(), [
                audit_values("renew", at, new.issuer, new.serial,
                             {"name": new.name, "replaces": old.serial_hex, "replaces_issuer": old.issuer})
                for old, new in pairs])
        return failed

    _SUPERSEDE = ("UPDATE certificates SET superseded_by = ? WHERE issuer = ? AND serial = ? "
                  "AND status != 'revoked' AND superseded_by IS NULL")

    def _supersede_sqlite(self, session: Session, pairs) -> bool:
        """SQLite: one executemany, whose rowcount is the sum of the rows changed; True when
        every one was (else nothing is concluded: the checked path decides)."""
        connection = session.connection()
        if connection.dialect.name != "sqlite":
            return False
        result = connection.exec_driver_sql(self._SUPERSEDE, [(new.serial_hex, old.issuer, old.serial_hex)
                                                             for old, new in pairs])
        return result.rowcount == len(pairs)

    def _supersede_checked(self, session: Session, pairs) -> list[CertificateRecord]:
        """Any database: the UPDATE, then each old one read back (the old ones not marked
        with their successor are returned)."""
        table = CertificateRow.__table__
        session.execute(
            update(table)
            .where(table.c.issuer == bindparam("o_issuer"), table.c.serial == bindparam("o_serial"),
                   table.c.status != Status.REVOKED.value, table.c.superseded_by.is_(None))
            .values(superseded_by=bindparam("n_serial")),
            [{"o_issuer": old.issuer, "o_serial": old.serial_hex, "n_serial": new.serial_hex}
             for old, new in pairs])
        marked: dict[tuple[str, str], str | None] = {}
        olds = [old.serial_hex for old, _ in pairs]
        for first in range(0, len(olds), 500):  # under SQLite's bound-variable limit
            rows = session.execute(select(table.c.issuer, table.c.serial, table.c.superseded_by)
                                   .where(table.c.serial.in_(olds[first:first + 500])))
            marked.update({(issuer, serial): by for issuer, serial, by in rows})
        return [old for old, new in pairs if marked.get((old.issuer, old.serial_hex)) != new.serial_hex]

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
        # ``serial = ?`` alone has no index (the unique one is (issuer, serial)) and read
        # every row (23 ms at 100,000); with the issuers listed first it is one seek each.
        with Session(self.engine) as s:
            rows = s.scalars(select(CertificateRow).where(CertificateRow.issuer.in_(_issuers()),
                                                          CertificateRow.serial == format(serial, "x")))
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

    def recorded_fingerprints(self, fingerprints: Sequence[str], current: bool = False) -> set[str]:
        """Which of these SHA-256 fingerprints (lower-case hex) the inventory holds (with
        ``current``, only those not superseded: a renewal's staged successor, not the set it
        replaced)."""
        found: set[str] = set()
        column = CertificateRow.fingerprint_sha256
        with Session(self.engine) as s:
            for start in range(0, len(fingerprints), 500):  # under SQLite's bound-variable limit
                stmt = select(column).where(column.in_(fingerprints[start:start + 500]))
                if current:
                    stmt = stmt.where(CertificateRow.superseded_by.is_(None))
                found.update(s.scalars(stmt))
        return found

    def locate(self, target: str) -> Located:
        """The certificates one SERIAL|NAME argument designates (see ``parse_target``).

        ``serial:HEX`` looks up serials only, ``name:NAME`` names only; a bare argument
        both, and must not find both a NAME and the serial of a certificate.

        Raises:
            BadInput: an empty target, or ``serial:`` followed by something not hex.
            AmbiguousTarget: a bare argument that is a NAME and an existing serial (exit 2).
            NotFound: nothing of that name or serial (exit 3).
        """
        wanted = parse_target(target)
        named = self.by_name(wanted.name) if wanted.name is not None else []
        numbered = self.by_serial(wanted.serial) if wanted.serial is not None else []
        if named and numbered:
            raise AmbiguousTarget(
                f"{wanted.text}: ambiguous: it is the NAME of {describe(named)} and the serial of "
                f"{describe(numbered)}",
                hint=f"say name:{wanted.text} or serial:{wanted.text}")
        if not (named or numbered):
            raise NotFound(f"{wanted.shown}: no certificate with this {wanted.kinds} in the inventory",
                           hint="run `mtlskit list` to see what was issued")
        return Located(wanted, "name" if named else "serial", tuple(named or numbered))

    def find(self, target: str) -> list[CertificateRecord]:
        """Every certificate ``target`` designates: all of a NAME's, or one serial's."""
        return list(self.locate(target).records)

    find_one = find  # the name callers used when NotFound was the point

    def query(self, now: dt.datetime, status: Status | None = None,
              expiring_before: dt.datetime | None = None, profile: str | None = None,
              issuer: str | None = None, limit: int | None = None) -> list[CertificateRecord]:
        """The certificates matching every given filter, soonest expiry first."""
        stmt = select(*CertificateRow.__table__.c).order_by(CertificateRow.not_after, CertificateRow.id)
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
        with self.engine.connect() as connection:  # Core rows: ORM objects cost twice as much
            return [record_from_row(r) for r in connection.execute(stmt)]

    def renewable(self, now: dt.datetime, before: dt.datetime | None = None) -> list[CertificateRecord]:
        """Live (not revoked, not expired), not superseded certificates with a recorded
        directory, soonest expiry first; with ``before``, only those expiring by then."""
        row = CertificateRow
        stmt = (select(row).where(row.status != Status.REVOKED.value, row.not_after > now,
                                  row.superseded_by.is_(None), row.directory.is_not(None))
                .order_by(row.not_after, row.id))
        if before is not None:
            stmt = stmt.where(row.not_after <= before)
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


def _issuers():
    """Every issuer the inventory holds, as a subquery that finds each with one index seek
    (a recursive CTE: the smallest issuer, then the smallest above it, ...)."""
    issuer = CertificateRow.issuer
    issuers = select(func.min(issuer).label("issuer")).cte("issuers", recursive=True)
    above = select(func.min(issuer)).where(issuer > issuers.c.issuer).scalar_subquery()
    issuers = issuers.union_all(select(above).where(issuers.c.issuer.is_not(None)))
    return select(issuers.c.issuer)


SERIAL_PREFIX, NAME_PREFIX = "serial:", "name:"   # a NAME never holds a ':'
SERIAL_HEX_DIGITS = 40                              # RFC 5280: at most 20 octets


@dataclasses.dataclass(frozen=True)
class Target:
    """One SERIAL|NAME argument, parsed: what to look up as a NAME and as a serial."""

    text: str
    name: str | None
    serial: int | None

    @property
    def shown(self) -> str:
        """The argument for a one-line message: as typed when it is plain, else quoted
        with its escapes (a line break in an API target must not start a new log line)."""
        plain = len(self.text) <= 80 and all("!" <= c <= "~" for c in self.text)
        return self.text if plain else repr(self.text[:80])

    @property
    def kinds(self) -> str:
        """What was looked for, for messages: a bare argument is always "name or serial"."""
        if self.name is None:
            return "serial"
        return "name" if self.text.lower().startswith(NAME_PREFIX) else "name or serial"


@dataclasses.dataclass(frozen=True)
class Located:
    """What ``Inventory.locate`` found: by ``name`` or by ``serial``, never both."""

    target: Target
    kind: str
    records: tuple[CertificateRecord, ...]


def parse_target(text: str) -> Target:
    """``serial:HEX``, ``name:NAME`` or a bare argument (a NAME, and a serial if it is hex).

    Raises:
        BadInput: empty, or ``serial:`` followed by something that is not a serial.
    """
    text = text.strip()
    lowered = text.lower()
    if lowered.startswith(SERIAL_PREFIX):
        serial = parse_serial(text[len(SERIAL_PREFIX):])
        if serial is None:
            raise BadInput(f"{text[:80]!r} is not a serial",
                           hint=f"give at most {SERIAL_HEX_DIGITS} hex digits, with or without colons")
        return Target(text, None, serial)
    if lowered.startswith(NAME_PREFIX):
        name = text[len(NAME_PREFIX):].strip()
        if not name:
            raise BadInput(f"{text[:80]!r} names no certificate", hint="give name:NAME")
        return Target(text, name, None)
    if not text:
        raise BadInput("an empty SERIAL or NAME", hint="give a SERIAL, a NAME, serial:HEX or name:NAME")
    return Target(text, text, parse_serial(text))


def parse_serial(text: str) -> int | None:
    """A serial as users paste it: hex, any case, with or without colons or ``0x``,
    leading zeros ignored; None if not that."""
    cleaned = text.strip().lower().removeprefix("0x").replace(":", "")
    digits = cleaned.lstrip("0") or cleaned[:1]
    if not digits or len(digits) > SERIAL_HEX_DIGITS or any(c not in "0123456789abcdef" for c in digits):
        return None
    return int(digits, 16)


def describe(records: Sequence[CertificateRecord]) -> str:
    """Certificates for a one-line message: serial, NAME, issuer and expiry of each."""
    return ", ".join(f"{r.serial_hex} ({r.name}, {r.issuer}, expires {r.not_after:%Y-%m-%d})" for r in records)
