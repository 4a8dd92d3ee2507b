"""Named read queries of the web UI: one certificate, the expiry timeline, a certificate's
history, CRL state and deployments (plain SQL on :mod:`mtlskit.store.sql`). The certificates
page (search, filters, keyset pages) is :mod:`mtlskit.store.certificate_search`.
"""

from __future__ import annotations

import datetime as dt
import json

from mtlskit.store.certificate_search import EVERY_ISSUER as _ISSUERS
from mtlskit.store.inventory import SELECT_RECORDS, CertificateRecord, Status, record_from_row
from mtlskit.store.sql import utc

_REVOKED = Status.REVOKED.value


def certificate(db, issuer: str, serial_hex: str) -> CertificateRecord | None:
    """One certificate by issuer and serial (lower-case hex), or None."""
    with db.read() as tx:
        row = tx.one(f"{SELECT_RECORDS} WHERE issuer = ? AND serial = ?", (issuer, serial_hex))
    return record_from_row(row) if row else None


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
