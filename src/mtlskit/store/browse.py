"""Named read queries of the web UI: certificate pages, the expiry timeline, a certificate's
history, CRL state and deployments (plain SQL on :mod:`mtlskit.store.sql`).

Pages are keyset-paged on ``(not_after, id)`` (the ``ix_certificates_not_after`` index plus
the primary key): the 2,000th page costs what the first does, where ``OFFSET`` would read
and drop every row before it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Sequence

from mtlskit.store.inventory import CERTIFICATE_COLUMNS, CertificateRecord, Status
from mtlskit.store.sql import utc

_COLUMNS = ", ".join(("id",) + CERTIFICATE_COLUMNS)
_REVOKED = Status.REVOKED.value
_LAST_CHAR = "\U0010ffff"  # name < prefix + this: every name that starts with prefix


@dataclasses.dataclass(frozen=True)
class PageQuery:
    """What the certificates page asks for; every field optional.

    Attributes:
        search: a NAME prefix, or a serial (hex) when it is one.
        status: one of Status's values.
        profile: a profile name.
        descending: latest expiry first.
        expiring_days: only valid certificates expiring within this many days.
        after: the id of the last row of the previous page (next page).
        before: the id of the first row of the next page (previous page).
    """

    search: str = ""
    status: str = ""
    profile: str = ""
    descending: bool = False
    expiring_days: int | None = None   # valid and expiring within this many days
    after: int | None = None
    before: int | None = None
    size: int = 50


@dataclasses.dataclass(frozen=True)
class Page:
    rows: list[tuple[int, CertificateRecord]]  # (row id, record)
    has_more: bool      # another page in the direction we came from
    total: int          # rows matching the filters


COUNT_CAP = 1_000           # pages say "more than 1,000" beyond: an exact count reads every match
NAME_INDEX_MATCHES = 2_000  # a NAME prefix with fewer matches is read through the name index
_ISSUERS = ("WITH RECURSIVE issuers(issuer) AS (SELECT MIN(issuer) FROM certificates UNION ALL "
            "SELECT (SELECT MIN(issuer) FROM certificates WHERE issuer > issuers.issuer) FROM issuers "
            "WHERE issuer IS NOT NULL) ")  # every issuer, one index seek each (see Inventory.by_serial)


def certificate_page(db, now: dt.datetime, query: PageQuery) -> Page:
    """One page of the certificates matching ``query``, by expiry then id.

    A search that is the serial of a certificate shows that certificate (and any other CA's
    of the same serial); otherwise it is a NAME prefix. ``total`` stops at COUNT_CAP + 1.
    """
    with db.read() as tx:
        serial = _serial_of(query.search) if query.search else None
        if serial is not None:
            page = _serial_page(tx, now, query, serial)
            if page.rows:
                return page
        # Few matches of a NAME prefix: read them through the name index and sort them; many:
        # walk the expiry index and skip the others. SQLite's "+" keeps a term off an index.
        sqlite = db.dialect == "sqlite"
        few = bool(query.search) and sqlite and _prefix_matches(tx, query.search) <= NAME_INDEX_MATCHES
        where, params = _filters(now, query, "+name" if sqlite and not few else "name")
        total = tx.scalar(f"SELECT COUNT(*) FROM (SELECT 1 FROM certificates WHERE {where} LIMIT ?) AS capped",
                          [*params, COUNT_CAP + 1]) or 0
        backwards = query.before is not None
        cursor_id = query.before if backwards else query.after
        if cursor_id is not None:
            cursor = tx.one("SELECT not_after, id FROM certificates WHERE id = ?", (cursor_id,))
            if cursor is not None:
                upward = query.descending == backwards  # walking towards later expiries
                where += f" AND (not_after, id) {'>' if upward else '<'} (?, ?)"
                params = [*params, utc(cursor[0]), cursor[1]]
        order = "DESC" if query.descending != backwards else "ASC"
        expiry = "+not_after" if few else "not_after"
        rows = tx.all(f"SELECT {_COLUMNS} FROM certificates WHERE {where} "
                      f"ORDER BY {expiry} {order}, id {order} LIMIT ?", [*params, query.size + 1])
    more = len(rows) > query.size
    rows = rows[:query.size]
    if backwards:
        rows.reverse()
    return Page([(row[0], record_of(row[1:])) for row in rows], more, total)


def _serial_page(tx, now: dt.datetime, query: PageQuery, serial: str) -> Page:
    where, params = _filters(now, dataclasses.replace(query, search=""))
    rows = tx.all(f"{_ISSUERS}SELECT {_COLUMNS} FROM certificates WHERE issuer IN (SELECT issuer FROM issuers) "
                  f"AND serial = ? AND {where} ORDER BY not_after, id", [serial, *params])
    return Page([(row[0], record_of(row[1:])) for row in rows], False, len(rows))


def _prefix_matches(tx, prefix: str) -> int:
    return tx.scalar("SELECT COUNT(*) FROM (SELECT 1 FROM certificates WHERE name >= ? AND name < ? LIMIT ?) "
                     "AS capped", (prefix, prefix + _LAST_CHAR, NAME_INDEX_MATCHES + 1)) or 0


def _filters(now: dt.datetime, query: PageQuery, name: str = "name") -> tuple[str, list]:
    clauses, params = ["1 = 1"], []
    if query.status == Status.REVOKED.value:
        clauses.append("status = ?"), params.append(_REVOKED)
    elif query.status == Status.EXPIRED.value:
        clauses.append("status != ? AND not_after <= ?"), params.extend([_REVOKED, now])
    elif query.status == Status.VALID.value:
        clauses.append("status != ? AND not_before <= ? AND not_after > ?"), params.extend([_REVOKED, now, now])
    elif query.status == Status.NOT_YET_VALID.value:
        clauses.append("status != ? AND not_before > ? AND not_after > ?"), params.extend([_REVOKED, now, now])
    if query.profile:
        clauses.append("profile = ?"), params.append(query.profile)
    if query.expiring_days is not None:
        clauses.append("status != ? AND not_before <= ? AND not_after > ? AND not_after <= ?")
        params.extend([_REVOKED, now, now, now + dt.timedelta(days=query.expiring_days)])
    if query.search:
        clauses.append(f"{name} >= ? AND {name} < ?"), params.extend([query.search, query.search + _LAST_CHAR])
    return " AND ".join(clauses), params


def _serial_of(text: str) -> str | None:
    text = text.lower().removeprefix("serial:").replace(":", "")
    if not text or len(text) > 40:
        return None
    try:
        return format(int(text, 16), "x")
    except ValueError:
        return None


def record_of(row: Sequence) -> CertificateRecord:
    """A CertificateRecord from the CERTIFICATE_COLUMNS of a row."""
    values = dict(zip(CERTIFICATE_COLUMNS, row))
    return CertificateRecord(
        issuer=values["issuer"], serial=int(values["serial"], 16), name=values["name"],
        subject=values["subject"], sans=tuple(json.loads(values["sans"])), profile=values["profile"],
        key_type=values["key_type"], not_before=utc(values["not_before"]), not_after=utc(values["not_after"]),
        fingerprint_sha256=values["fingerprint_sha256"], pem=values["pem"], status=values["status"],
        revoked_at=utc(values["revoked_at"]), revocation_reason=values["revocation_reason"],
        directory=values["directory"],
        superseded_by=None if values["superseded_by"] is None else int(values["superseded_by"], 16))


def certificate(db, issuer: str, serial_hex: str) -> CertificateRecord | None:
    """One certificate by issuer and serial (lower-case hex), or None."""
    with db.read() as tx:
        row = tx.one(f"SELECT {_COLUMNS} FROM certificates WHERE issuer = ? AND serial = ?", (issuer, serial_hex))
    return record_of(row[1:]) if row else None


def expiry_days(db, start: dt.datetime, end: dt.datetime) -> list[tuple[dt.date, int]]:
    """How many live (not revoked) certificates expire on each UTC day of [start, end).

    Two index reads instead of one pass over the table: every certificate per day (the
    expiry index alone), minus the revoked ones (the (issuer, status) index).
    """
    day = ("substr(not_after, 1, 10)" if db.dialect == "sqlite"
           else "to_char(not_after AT TIME ZONE 'UTC', 'YYYY-MM-DD')")
    with db.read() as tx:
        every = tx.all(f"SELECT {day}, COUNT(*) FROM certificates WHERE not_after >= ? AND not_after < ? "
                       f"GROUP BY 1", (start, end))
        revoked = tx.all(f"{_ISSUERS}SELECT {day}, COUNT(*) FROM certificates WHERE issuer IN "
                         f"(SELECT issuer FROM issuers) AND status = ? AND not_after >= ? AND not_after < ? "
                         f"GROUP BY 1", (_REVOKED, start, end))
    gone = dict(revoked)
    return sorted((dt.date.fromisoformat(text), count - gone.get(text, 0)) for text, count in every
                  if count > gone.get(text, 0))


def soonest_names(db, start: dt.datetime, end: dt.datetime, limit: int) -> list[str]:
    """The NAMEs of the first ``limit`` live certificates expiring in [start, end)."""
    with db.read() as tx:
        rows = tx.all("SELECT name FROM certificates WHERE not_after >= ? AND not_after < ? AND status != ? "
                      "ORDER BY not_after, id LIMIT ?", (start, end, _REVOKED, limit))
    return [row[0] for row in rows]


def history(db, issuer: str, serial_hex: str, limit: int = 200) -> list[dict]:
    """The audit events of one certificate, oldest first (at, action, detail)."""
    with db.read() as tx:
        rows = tx.all("SELECT at, action, detail FROM audit_events WHERE serial = ? AND issuer = ? "
                      "ORDER BY id LIMIT ?", (serial_hex, issuer, limit))
    return [{"at": utc(at), "action": action, "detail": json.loads(detail or "{}")} for at, action, detail in rows]


def crl_states(db) -> list[dict]:
    """Per CA: the CRL number, this/next update, entries, and the number last published."""
    with db.read() as tx:
        rows = tx.all("SELECT issuer, crl_number, this_update, next_update, entry_count, published_number "
                      "FROM crl_state ORDER BY issuer")
    return [{"issuer": r[0], "crl_number": r[1], "this_update": utc(r[2]), "next_update": utc(r[3]),
             "entries": r[4], "published_number": r[5]} for r in rows]


def revoked_counts(db) -> dict[str, int]:
    """Revoked certificates per issuer (the (issuer, status) index)."""
    with db.read() as tx:
        rows = tx.all(f"{_ISSUERS}SELECT issuer, COUNT(*) FROM certificates WHERE issuer IN "
                      f"(SELECT issuer FROM issuers) AND status = ? GROUP BY issuer", (_REVOKED,))
    return dict(rows)


def deployments(db) -> list[dict]:
    """Every recorded deployment, oldest first."""
    with db.read() as tx:
        rows = tx.all("SELECT server, name, directory, revocation, created_at, updated_at FROM deployments "
                      "ORDER BY id")
    return [{"server": r[0], "name": r[1], "directory": r[2], "revocation": r[3],
             "created_at": utc(r[4]), "updated_at": utc(r[5])} for r in rows]
