"""The REST API's certificate search: filters and keyset pages (plain SQL on store.sql).

Pages follow ``(not_after, id)`` (soonest expiry first, the ``ix_certificates_not_after``
index plus the primary key): the last page of 100,000 certificates costs what the first
does, and a certificate issued or revoked between two pages never shifts the next one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

from mtlskit.store.inventory import CERTIFICATE_COLUMNS, CertificateRecord, Status
from mtlskit.store.sql import utc

_REVOKED = Status.REVOKED.value
_SELECT = ", ".join(CERTIFICATE_COLUMNS) + ", id"
_LAST_CHAR = "\U0010ffff"  # the highest code point: prefix <= name < prefix + this


@dataclasses.dataclass(frozen=True)
class Search:
    """Every field optional; all given ones must hold.

    Attributes:
        name: a NAME, or a prefix of NAMEs when it ends with ``*``.
        status: a Status (at ``now``).
        expiring_before: valid certificates whose notAfter is at or before this.
        after: the (not_after, id) of the last row of the previous page.
    """

    name: str | None = None
    status: Status | None = None
    profile: str | None = None
    issuer: str | None = None
    expiring_before: dt.datetime | None = None
    after: tuple[dt.datetime, int] | None = None
    limit: int = 100


@dataclasses.dataclass(frozen=True)
class SearchPage:
    records: list[CertificateRecord]
    total: int                                # matching the filters, all pages
    next_after: tuple[dt.datetime, int] | None  # the cursor of the next page; None: this is the last


def search_certificates(db, now: dt.datetime, search: Search) -> SearchPage:
    where, params = _filters(now, search, db.dialect)
    with db.read() as tx:
        total = tx.scalar(f"SELECT COUNT(*) FROM certificates WHERE {where}", params) or 0
        if search.after is not None:
            where += " AND (not_after > ? OR (not_after = ? AND id > ?))"
            params += [search.after[0], search.after[0], search.after[1]]
        rows = tx.all(f"SELECT {_SELECT} FROM certificates WHERE {where} ORDER BY not_after, id LIMIT ?",
                      [*params, search.limit + 1])
    more = len(rows) > search.limit
    rows = rows[:search.limit]
    records = [_record(row) for row in rows]
    next_after = (records[-1].not_after, rows[-1][-1]) if more else None
    return SearchPage(records, total, next_after)


def _prefix_clause(dialect: str) -> str:
    # Not LIKE: it ignores case on SQLite and not on PostgreSQL. SQLite compares names as
    # bytes, so a range on ix_certificates_name is exact; PostgreSQL's collation may not
    # order that way, so it compares the prefix itself.
    return "name >= ? AND name < ?" if dialect == "sqlite" else "substr(name, 1, ?) = ?"


def _prefix_params(dialect: str, prefix: str) -> list:
    return [prefix, prefix + _LAST_CHAR] if dialect == "sqlite" else [len(prefix), prefix]


def _filters(now: dt.datetime, search: Search, dialect: str) -> tuple[str, list]:
    clauses, params = ["1 = 1"], []
    if search.status is Status.REVOKED:
        clauses.append("status = ?"), params.append(_REVOKED)
    elif search.status is Status.EXPIRED:
        clauses.append("status != ? AND not_after <= ?"), params.extend([_REVOKED, now])
    elif search.status is Status.VALID:
        clauses.append("status != ? AND not_before <= ? AND not_after > ?"), params.extend([_REVOKED, now, now])
    elif search.status is Status.NOT_YET_VALID:
        clauses.append("status != ? AND not_before > ? AND not_after > ?"), params.extend([_REVOKED, now, now])
    if search.expiring_before is not None:
        clauses.append("status != ? AND not_before <= ? AND not_after > ? AND not_after <= ?")
        params.extend([_REVOKED, now, now, search.expiring_before])
    if search.profile:
        clauses.append("profile = ?"), params.append(search.profile)
    if search.issuer:
        clauses.append("issuer = ?"), params.append(search.issuer)
    if search.name is not None:
        if search.name.endswith("*"):
            clauses.append(_prefix_clause(dialect)), params.extend(_prefix_params(dialect, search.name[:-1]))
        else:
            clauses.append("name = ?"), params.append(search.name)
    return " AND ".join(clauses), params


def _record(row: tuple) -> CertificateRecord:
    values = dict(zip(CERTIFICATE_COLUMNS, row))
    return CertificateRecord(
        issuer=values["issuer"], serial=int(values["serial"], 16), name=values["name"],
        subject=values["subject"], sans=tuple(json.loads(values["sans"])), profile=values["profile"],
        key_type=values["key_type"], not_before=utc(values["not_before"]), not_after=utc(values["not_after"]),
        fingerprint_sha256=values["fingerprint_sha256"], pem=values["pem"], status=values["status"],
        revoked_at=utc(values["revoked_at"]), revocation_reason=values["revocation_reason"],
        directory=values["directory"],
        superseded_by=None if values["superseded_by"] is None else int(values["superseded_by"], 16))
