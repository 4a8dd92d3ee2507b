"""Certificate search and keyset pages, one query builder for every adapter (plain SQL on
:mod:`mtlskit.store.sql`): the REST API's ``GET /api/v1/certificates`` (:func:`search_certificates`)
and the web UI's certificates page (:func:`certificate_page`).

Pages follow ``(not_after, id)`` (the ``ix_certificates_not_after`` index plus the primary
key): the last page of 100,000 certificates costs what the first does, where ``OFFSET``
would read and drop every row before it, and a certificate issued or revoked between two
pages never shifts the next one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from mtlskit.store.inventory import RECORD_COLUMNS, CertificateRecord, Status, record_from_row
from mtlskit.store.sql import utc

_COLUMNS = ", ".join(("id",) + RECORD_COLUMNS)
_REVOKED = Status.REVOKED.value
_LAST_CHAR = "\U0010ffff"  # the highest code point: prefix <= name < prefix + this
COUNT_CAP = 1_000           # the UI says "more than 1,000" beyond: an exact count reads every match
NAME_INDEX_MATCHES = 2_000  # a NAME prefix with fewer matches is read through the name index
EVERY_ISSUER = ("WITH RECURSIVE issuers(issuer) AS (SELECT MIN(issuer) FROM certificates UNION ALL "
                "SELECT (SELECT MIN(issuer) FROM certificates WHERE issuer > issuers.issuer) FROM issuers "
                "WHERE issuer IS NOT NULL) ")  # every issuer, one index seek each (see Inventory.by_serial)


@dataclasses.dataclass(frozen=True)
class Filters:
    """What a search asks for; every field optional, all given ones must hold.

    Attributes:
        name: exactly this NAME.
        prefix: NAMEs that start with this.
        status: a Status (at ``now``).
        expiring_before: valid certificates whose notAfter is at or before this.
    """

    name: str | None = None
    prefix: str | None = None
    status: Status | None = None
    profile: str | None = None
    issuer: str | None = None
    expiring_before: dt.datetime | None = None


def where_of(now: dt.datetime, filters: Filters, dialect: str, name_column: str = "name") -> tuple[str, list]:
    """The WHERE clause (and its parameters) of ``filters``: the one query builder.

    ``name_column`` may be ``+name`` on SQLite, to keep a NAME prefix off the name index.
    """
    clauses, params = ["1 = 1"], []
    if filters.status is Status.REVOKED:
        clauses.append("status = ?"), params.append(_REVOKED)
    elif filters.status is Status.EXPIRED:
        clauses.append("status != ? AND not_after <= ?"), params.extend([_REVOKED, now])
    elif filters.status is Status.VALID:
        clauses.append("status != ? AND not_before <= ? AND not_after > ?"), params.extend([_REVOKED, now, now])
    elif filters.status is Status.NOT_YET_VALID:
        clauses.append("status != ? AND not_before > ? AND not_after > ?"), params.extend([_REVOKED, now, now])
    if filters.expiring_before is not None:
        clauses.append("status != ? AND not_before <= ? AND not_after > ? AND not_after <= ?")
        params.extend([_REVOKED, now, now, filters.expiring_before])
    if filters.profile:
        clauses.append("profile = ?"), params.append(filters.profile)
    if filters.issuer:
        clauses.append("issuer = ?"), params.append(filters.issuer)
    if filters.name is not None:
        clauses.append("name = ?"), params.append(filters.name)
    if filters.prefix:
        clause, values = _prefix(dialect, filters.prefix, name_column)
        clauses.append(clause), params.extend(values)
    return " AND ".join(clauses), params


def _prefix(dialect: str, prefix: str, column: str) -> tuple[str, list]:
    # Not LIKE: it ignores case on SQLite and not on PostgreSQL. SQLite compares names as
    # bytes, so a range on ix_certificates_name is exact; PostgreSQL's collation may not
    # order that way, so it compares the prefix itself.
    if dialect == "sqlite":
        return f"{column} >= ? AND {column} < ?", [prefix, prefix + _LAST_CHAR]
    return "substr(name, 1, ?) = ?", [len(prefix), prefix]


def _count(tx, where: str, params: list, cap: int | None = None) -> int:
    if cap is None:
        return tx.scalar(f"SELECT COUNT(*) FROM certificates WHERE {where}", params) or 0
    return tx.scalar(f"SELECT COUNT(*) FROM (SELECT 1 FROM certificates WHERE {where} LIMIT ?) AS capped",
                     [*params, cap + 1]) or 0


def _rows(tx, where: str, params: list, *, cursor: tuple | None, later: bool, size: int,
          expiry_column: str = "not_after") -> tuple[list, bool]:
    """Up to ``size`` rows (id first) past ``cursor`` (not_after, id), towards later expiries
    when ``later``; and whether more follow."""
    if cursor is not None:
        where += f" AND (not_after, id) {'>' if later else '<'} (?, ?)"
        params = [*params, cursor[0], cursor[1]]
    order = "ASC" if later else "DESC"
    rows = tx.all(f"SELECT {_COLUMNS} FROM certificates WHERE {where} "
                  f"ORDER BY {expiry_column} {order}, id {order} LIMIT ?", [*params, size + 1])
    return rows[:size], len(rows) > size


# -- the REST API ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Search:
    """The REST API's search: ``filters``, from ``after`` (the (not_after, id) of the last row
    of the previous page), ``limit`` rows."""

    filters: Filters = Filters()
    after: tuple[dt.datetime, int] | None = None
    limit: int = 100


@dataclasses.dataclass(frozen=True)
class SearchPage:
    records: list[CertificateRecord]
    total: int                                # matching the filters, all pages
    next_after: tuple[dt.datetime, int] | None  # the cursor of the next page; None: this is the last


def search_certificates(db, now: dt.datetime, search: Search) -> SearchPage:
    """One page of the certificates ``search`` asks for, soonest expiry first; ``total`` exact."""
    where, params = where_of(now, search.filters, db.dialect)
    with db.read() as tx:
        total = _count(tx, where, params)
        rows, more = _rows(tx, where, params, cursor=search.after, later=True, size=search.limit)
    records = [record_from_row(row[1:]) for row in rows]
    next_after = (records[-1].not_after, rows[-1][0]) if more else None
    return SearchPage(records, total, next_after)


# -- the web UI -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PageQuery:
    """What the UI's certificates page asks for; every field optional.

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

    def filters(self, now: dt.datetime, prefix: bool = True) -> Filters:
        status = next((s for s in Status if s.value == self.status), None)
        expiring = None if self.expiring_days is None else now + dt.timedelta(days=self.expiring_days)
        return Filters(prefix=self.search if prefix else None, status=status, profile=self.profile or None,
                       expiring_before=expiring)


@dataclasses.dataclass(frozen=True)
class Page:
    rows: list[tuple[int, CertificateRecord]]  # (row id, record)
    has_more: bool      # another page in the direction we came from
    total: int          # rows matching the filters


def certificate_page(db, now: dt.datetime, query: PageQuery) -> Page:
    """One page of the certificates matching ``query``, by expiry then id.

    A search that is the serial of a certificate shows that certificate (and any other CA's
    of the same serial); otherwise it is a NAME prefix. ``total`` stops at COUNT_CAP + 1.
    """
    with db.read() as tx:
        serial = _serial_of(query.search) if query.search else None
        if serial is not None:
            page = _serial_page(tx, now, query, serial, db.dialect)
            if page.rows:
                return page
        # Few matches of a NAME prefix: read them through the name index and sort them; many:
        # walk the expiry index and skip the others. SQLite's "+" keeps a term off an index.
        sqlite = db.dialect == "sqlite"
        few = bool(query.search) and sqlite and _prefix_matches(tx, query.search) <= NAME_INDEX_MATCHES
        where, params = where_of(now, query.filters(now), db.dialect, "+name" if sqlite and not few else "name")
        total = _count(tx, where, params, cap=COUNT_CAP)
        backwards = query.before is not None
        cursor_id = query.before if backwards else query.after
        cursor = None
        if cursor_id is not None:
            found = tx.one("SELECT not_after, id FROM certificates WHERE id = ?", (cursor_id,))
            cursor = (utc(found[0]), found[1]) if found is not None else None
        rows, more = _rows(tx, where, params, cursor=cursor, later=query.descending == backwards, size=query.size,
                           expiry_column="+not_after" if few else "not_after")
    if backwards:
        rows.reverse()
    return Page([(row[0], record_from_row(row[1:])) for row in rows], more, total)


def _serial_page(tx, now: dt.datetime, query: PageQuery, serial: str, dialect: str) -> Page:
    where, params = where_of(now, query.filters(now, prefix=False), dialect)
    rows = tx.all(f"{EVERY_ISSUER}SELECT {_COLUMNS} FROM certificates WHERE issuer IN (SELECT issuer FROM issuers) "
                  f"AND serial = ? AND {where} ORDER BY not_after, id", [serial, *params])
    return Page([(row[0], record_from_row(row[1:])) for row in rows], False, len(rows))


def _prefix_matches(tx, prefix: str) -> int:
    return tx.scalar("SELECT COUNT(*) FROM (SELECT 1 FROM certificates WHERE name >= ? AND name < ? LIMIT ?) "
                     "AS capped", (prefix, prefix + _LAST_CHAR, NAME_INDEX_MATCHES + 1)) or 0


def _serial_of(text: str) -> str | None:
    text = text.lower().removeprefix("serial:").replace(":", "")
    if not text or len(text) > 40:
        return None
    try:
        return format(int(text, 16), "x")
    except ValueError:
        return None
