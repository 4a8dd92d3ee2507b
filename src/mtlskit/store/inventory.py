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

from mtlskit.audit_actor import current_by
from mtlskit.errors import AlreadyExists, AmbiguousTarget, BadInput, NotFound
from mtlskit.store.bulk import BulkInsert
from mtlskit.store.dberrors import is_integrity_error
from mtlskit.store.db import open_database
from mtlskit.store.sql import SQLITE, Database, Tx, placeholders, utc


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


_utc = utc  # the name callers used before store.sql

# The columns of a CertificateRecord, in the order record_from_row reads them.
RECORD_COLUMNS = ("issuer", "serial", "name", "subject", "sans", "profile", "key_type", "not_before",
                  "not_after", "fingerprint_sha256", "pem", "status", "revoked_at", "revocation_reason",
                  "directory", "superseded_by")
SELECT_RECORDS = f"SELECT {', '.join(RECORD_COLUMNS)} FROM certificates"
# the same without the PEM (an empty string in its place): for listings that never print it
SELECT_LISTED = SELECT_RECORDS.replace(", pem,", ", '',")
# What a listing prints of each certificate (CertificateRecord.summary's values, as stored).
SUMMARY_COLUMNS = ("name", "serial", "issuer", "profile", "status", "subject", "sans", "key_type",
                   "not_before", "not_after", "revoked_at", "revocation_reason", "fingerprint_sha256",
                   "superseded_by")
SELECT_SUMMARIES = f"SELECT {', '.join(SUMMARY_COLUMNS)} FROM certificates"
_fromisoformat = dt.datetime.fromisoformat
_UTC = dt.timezone.utc
_json_loads = json.JSONDecoder().decode


def record_from_row(row: Sequence) -> CertificateRecord:
    """A record from the values of RECORD_COLUMNS, as the database returns them."""
    (issuer, serial, name, subject, sans, profile, key_type, not_before, not_after, fingerprint,
     pem, status, revoked_at, reason, directory, superseded_by) = row
    return CertificateRecord(
        issuer, int(serial, 16), name, subject, () if sans == "[]" else tuple(_json_loads(sans)),
        profile, key_type, stored_utc(not_before), stored_utc(not_after), fingerprint, pem, status,
        None if revoked_at is None else utc(revoked_at), reason, directory,
        None if superseded_by is None else int(superseded_by, 16))


def stored_utc(value) -> dt.datetime:
    """``utc()`` of a stored datetime, with SQLite's usual text (no offset) read inline:
    a listing reads two per row."""
    if type(value) is str:
        moment = _fromisoformat(value)
        if moment.tzinfo is None:
            return moment.replace(tzinfo=_UTC)
    return utc(value)


def audit_row(action: str, at: dt.datetime, issuer: str | None = None,
              serial: int | None = None, **detail) -> tuple:
    """The ``audit_events`` row of one event, as values in the order of AUDIT_COLUMNS."""
    return audit_values(action, at, issuer, serial, detail)


def audit_values(action: str, at: dt.datetime, issuer: str | None, serial: int | None,
                 detail: dict) -> tuple:
    """The ``audit_events`` row, as values in the order of AUDIT_COLUMNS (with the ``by``
    of :func:`mtlskit.audit_actor.acting_as` when a service caller acts)."""
    by = current_by()
    if by is not None and "by" not in detail:
        detail = {**detail, "by": by}
    return (at, action, issuer, None if serial is None else format(serial, "x"),
            _DETAIL_JSON.encode(detail))


def record_events(tx: Tx, rows: Sequence[tuple]) -> None:
    """Insert audit events given as AUDIT_COLUMNS tuples (``audit_row``/``audit_values``)."""
    INSERT_EVENTS(tx, rows)


INSERT_CERTIFICATES = BulkInsert("certificates", CERTIFICATE_COLUMNS,
                                 ("not_before", "not_after", "revoked_at", "created_at"))
INSERT_EVENTS = BulkInsert("audit_events", AUDIT_COLUMNS, ("at",))
CERTIFICATES_TOPIC = "certificates"


def bump_change_counter(tx: Tx, topic: str = CERTIFICATES_TOPIC) -> None:
    """Inside ``tx``: move the change counter of ``topic`` (see migration 0005_service:
    its row lock orders the bumps as the transactions commit)."""
    tx.execute("UPDATE change_counters SET value = value + 1 WHERE topic = ?", (topic,))


def read_change_counter(tx: Tx, topic: str = CERTIFICATES_TOPIC) -> int:
    """Inside ``tx``: the change counter of ``topic`` now."""
    return tx.scalar("SELECT value FROM change_counters WHERE topic = ?", (topic,)) or 0


class Inventory:
    """Named queries and changes over the inventory database (plain SQL, :mod:`mtlskit.store.sql`).

    Use ``transaction()`` to group changes; every ``add_*``/``mark_*`` call records its
    audit event inside the same transaction. A read made inside a transaction of the same
    thread joins it (one connection per thread).
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    @classmethod
    def open(cls, database_url: str) -> "Inventory":
        """The inventory of ``database_url``, migrated to the newest schema if it is behind."""
        return cls(open_database(database_url))

    @property
    def dialect(self) -> str:
        return self.db.dialect

    def transaction(self) -> contextlib.AbstractContextManager[Tx]:
        """One write transaction: committed when the block ends, rolled back if it raises."""
        return self.db.transaction()

    def read(self) -> contextlib.AbstractContextManager[Tx]:
        """A consistent read (inside a transaction of this thread: that transaction)."""
        return self.db.read()

    def close(self) -> None:
        """Close this thread's connection (the next use opens another)."""
        self.db.close()

    # --- changes -----------------------------------------------------------------

    def add_certificates(self, records: Sequence[CertificateRecord], at: dt.datetime,
                         action: str = "issue", session: Tx | None = None) -> None:
        """Record issued certificates and one audit event each, atomically, and move the
        ``certificates`` change counter (a serial an OCSP cache knew as unknown is good now).

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
            try:
                INSERT_CERTIFICATES(tx, certificates)
            except Exception as exc:
                if not is_integrity_error(exc):
                    raise
                raise AlreadyExists("a certificate with the same issuer and serial or "
                                    "fingerprint is already in the inventory") from None
            INSERT_EVENTS(tx, events)
            bump_change_counter(tx)

    def record_event(self, action: str, at: dt.datetime, issuer: str | None = None,
                     serial: int | None = None, session: Tx | None = None, **detail) -> None:
        with self._session(session) as tx:
            INSERT_EVENTS(tx, [audit_values(action, at, issuer, serial, detail)])

    _REVOKE = ("UPDATE certificates SET status = 'revoked', revoked_at = ?, revocation_reason = ?"
               " WHERE issuer = ? AND serial = ? AND status != 'revoked'")

    def mark_revoked(self, session: Tx, records: Sequence[CertificateRecord], at: dt.datetime,
                     reason: str, now: dt.datetime) -> list[CertificateRecord]:
        """Inside ``session``: set each certificate revoked (``at``, ``reason``), record one
        "revoke" audit event each and move the ``certificates`` change counter. Returns
        those that were revoked already (by another process since they were read): the
        caller refuses, rolling everything back."""
        already = [record for record in records
                   if session.execute(self._REVOKE, (at, reason, record.issuer, record.serial_hex)) != 1]
        if not already:
            INSERT_EVENTS(session, [
                audit_values("revoke", now, r.issuer, r.serial,
                             {"name": r.name, "reason": reason, "revoked_at": at.isoformat()}) for r in records])
            bump_change_counter(session)
        return already

    def mark_superseded(self, session: Tx, old: CertificateRecord, new: CertificateRecord,
                        at: dt.datetime) -> bool:
        """Inside ``session``: mark ``old`` superseded by ``new`` and record one "renew" audit
        event. False (and nothing changed) when ``old`` was revoked or superseded meanwhile
        (by another process since it was read): the caller refuses, rolling back."""
        return not self.mark_superseded_many(session, [(old, new)], at)

    def mark_superseded_many(self, session: Tx, pairs: Sequence[tuple[CertificateRecord, CertificateRecord]],
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
            INSERT_EVENTS(session, [
                audit_values("renew", at, new.issuer, new.serial,
                             {"name": new.name, "replaces": old.serial_hex, "replaces_issuer": old.issuer})
                for old, new in pairs])
        return failed

    _SUPERSEDE = ("UPDATE certificates SET superseded_by = ? WHERE issuer = ? AND serial = ? "
                  "AND status != 'revoked' AND superseded_by IS NULL")

    def _supersede_sqlite(self, session: Tx, pairs) -> bool:
        """SQLite: one executemany, whose rowcount is the sum of the rows changed; True when
        every one was (else nothing is concluded: the checked path decides)."""
        if session.dialect != SQLITE:
            return False
        changed = session.executemany(self._SUPERSEDE, [(new.serial_hex, old.issuer, old.serial_hex)
                                                        for old, new in pairs])
        return changed == len(pairs)

    def _supersede_checked(self, session: Tx, pairs) -> list[CertificateRecord]:
        """Any database: the UPDATE, then each old one read back (the old ones not marked
        with their successor are returned)."""
        session.executemany(self._SUPERSEDE, [(new.serial_hex, old.issuer, old.serial_hex) for old, new in pairs])
        marked: dict[tuple[str, str], str | None] = {}
        olds = [old.serial_hex for old, _ in pairs]
        for first in range(0, len(olds), 500):  # under SQLite's bound-variable limit
            chunk = olds[first:first + 500]
            rows = session.all("SELECT issuer, serial, superseded_by FROM certificates"
                               f" WHERE serial IN ({placeholders(len(chunk))})", chunk)
            marked.update({(issuer, serial): by for issuer, serial, by in rows})
        return [old for old, new in pairs if marked.get((old.issuer, old.serial_hex)) != new.serial_hex]

    @contextlib.contextmanager
    def _session(self, session: Tx | None) -> Iterator[Tx]:
        if session is not None:
            yield session
        else:
            with self.transaction() as tx:
                yield tx

    # --- queries -----------------------------------------------------------------

    def _records(self, sql: str, params: Sequence = ()) -> list[CertificateRecord]:
        with self.db.read() as tx:
            return [record_from_row(row) for row in tx.all(sql, params)]

    def get(self, issuer: str, serial: int) -> CertificateRecord | None:
        found = self._records(f"{SELECT_RECORDS} WHERE issuer = ? AND serial = ?", (issuer, format(serial, "x")))
        return found[0] if found else None

    # ``serial = ?`` alone has no index (the unique one is (issuer, serial)) and read every
    # row (23 ms at 100,000); with the issuers listed first it is one seek each: a recursive
    # CTE finds the smallest issuer, then the smallest above it, ...
    _BY_SERIAL = ("WITH RECURSIVE issuers(issuer) AS ("
                  " SELECT min(issuer) FROM certificates"
                  " UNION ALL"
                  " SELECT (SELECT min(c.issuer) FROM certificates c WHERE c.issuer > issuers.issuer)"
                  " FROM issuers WHERE issuers.issuer IS NOT NULL)"
                  f" {SELECT_RECORDS} WHERE issuer IN (SELECT issuer FROM issuers) AND serial = ?")

    def by_serial(self, serial: int) -> list[CertificateRecord]:
        return self._records(self._BY_SERIAL, (format(serial, "x"),))

    def by_name(self, name: str) -> list[CertificateRecord]:
        return self._records(f"{SELECT_RECORDS} WHERE name = ? ORDER BY not_before, id", (name,))

    def by_fingerprint(self, fingerprint_sha256: str) -> CertificateRecord | None:
        found = self._records(f"{SELECT_RECORDS} WHERE fingerprint_sha256 = ?", (fingerprint_sha256.lower(),))
        return found[0] if found else None

    def recorded_fingerprints(self, fingerprints: Sequence[str], current: bool = False) -> set[str]:
        """Which of these SHA-256 fingerprints (lower-case hex) the inventory holds (with
        ``current``, only those not superseded: a renewal's staged successor, not the set it
        replaced)."""
        found: set[str] = set()
        only_current = " AND superseded_by IS NULL" if current else ""
        with self.db.read() as tx:
            for start in range(0, len(fingerprints), 500):  # under SQLite's bound-variable limit
                chunk = list(fingerprints[start:start + 500])
                found.update(value for (value,) in tx.all(
                    "SELECT fingerprint_sha256 FROM certificates"
                    f" WHERE fingerprint_sha256 IN ({placeholders(len(chunk))}){only_current}", chunk))
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

    # the WHERE conditions of each status filter of ``query`` (``now`` bound to each ?)
    _STATUS_FILTERS = {
        Status.REVOKED: ("status = 'revoked'", 0),
        Status.EXPIRED: ("status != 'revoked' AND not_after <= ?", 1),
        Status.VALID: ("status != 'revoked' AND not_before <= ? AND not_after > ?", 2),
        Status.NOT_YET_VALID: ("status != 'revoked' AND not_before > ? AND not_after > ?", 2),
    }

    def query(self, now: dt.datetime, status: Status | None = None,
              expiring_before: dt.datetime | None = None, profile: str | None = None,
              issuer: str | None = None, limit: int | None = None, pem: bool = True) -> list[CertificateRecord]:
        """The certificates matching every given filter, soonest expiry first (with ``pem``
        False, each record's ``pem`` is empty: a listing does not read 10,000 PEMs)."""
        where, params = self._filters(now, status, expiring_before, profile, issuer)
        sql = (SELECT_RECORDS if pem else SELECT_LISTED) + where + " ORDER BY not_after, id"
        if limit:
            sql += " LIMIT ?"
            params.append(int(limit))
        return self._records(sql, params)

    def summary_rows(self, now: dt.datetime, status: Status | None = None,
                     expiring_before: dt.datetime | None = None, profile: str | None = None) -> list[tuple]:
        """query()'s certificates as stored rows of SUMMARY_COLUMNS, no record built: `list`
        prints 10,000 of them in a process that must start and end within 150 ms (issue 12)."""
        where, params = self._filters(now, status, expiring_before, profile, None)
        with self.db.read() as tx:
            return tx.all(SELECT_SUMMARIES + where + " ORDER BY not_after, id", params)

    def _filters(self, now: dt.datetime, status: Status | None, expiring_before: dt.datetime | None,
                 profile: str | None, issuer: str | None) -> tuple[str, list]:
        """The WHERE clause (with its leading space; empty without a filter) and its parameters."""
        where: list[str] = []
        params: list = []
        if status in self._STATUS_FILTERS:
            condition, times = self._STATUS_FILTERS[status]
            where.append(condition)
            params.extend([now] * times)
        if expiring_before is not None:  # valid ones only
            where.append("status != 'revoked' AND not_before <= ? AND not_after > ? AND not_after <= ?")
            params.extend([now, now, expiring_before])
        if profile:
            where.append("profile = ?")
            params.append(profile)
        if issuer:
            where.append("issuer = ?")
            params.append(issuer)
        return (" WHERE " + " AND ".join(where) if where else ""), params

    def renewable(self, now: dt.datetime, before: dt.datetime | None = None) -> list[CertificateRecord]:
        """Live (not revoked, not expired), not superseded certificates with a recorded
        directory, soonest expiry first; with ``before``, only those expiring by then."""
        sql = (f"{SELECT_RECORDS} WHERE status != 'revoked' AND not_after > ? AND superseded_by IS NULL"
               " AND directory IS NOT NULL")
        params: list = [now]
        if before is not None:
            sql += " AND not_after <= ?"
            params.append(before)
        return self._records(sql + " ORDER BY not_after, id", params)

    def expiring(self, now: dt.datetime, before: dt.datetime) -> list[CertificateRecord]:
        return self.query(now, expiring_before=before)

    def count(self) -> int:
        with self.db.read() as tx:
            return tx.scalar("SELECT count(*) FROM certificates") or 0

    def change_counter(self, topic: str = CERTIFICATES_TOPIC) -> int:
        """The change counter of ``topic``: moves with each committed change it covers
        (``certificates``: every change of a certificate's status)."""
        with self.db.read() as tx:
            return read_change_counter(tx, topic)

    def events(self, limit: int = 100) -> list[dict]:
        with self.db.read() as tx:
            rows = tx.all("SELECT id, at, action, issuer, serial, detail FROM audit_events"
                          " ORDER BY id DESC LIMIT ?", (int(limit),))
        return [{"id": event_id, "at": utc(at), "action": action, "issuer": issuer,
                 "serial": serial, "detail": json.loads(detail)}
                for event_id, at, action, issuer, serial, detail in rows]


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
