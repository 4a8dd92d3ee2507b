"""The SQL of CRLs: ``crl_state`` (per CA: CRL number, the last CRL signed) and
``crl_entries`` (the encoded CRL entry of each revoked certificate, a derived cache of
``certificates``; see :mod:`mtlskit.publish.crls`). Functions that take ``tx`` run
inside the caller's transaction."""

from __future__ import annotations

import dataclasses
import datetime as dt
import operator
from typing import Iterator, Sequence

from mtlskit.store.bulk import BulkInsert
from mtlskit.store.sql import SQLITE, Tx, placeholders, utc

REVOKED = "revoked"
INSERT_ENTRIES = BulkInsert("crl_entries", ("issuer", "serial", "der"))


@dataclasses.dataclass(frozen=True)
class CrlStateRow:
    """What a CA's next CRL is built from: its last number, DER and entry count."""

    crl_number: int
    der: bytes | None
    entry_count: int | None


def count_revoked(tx: Tx, issuer: str) -> int:
    """Revoked certificates of ``issuer`` (answered from the (issuer, status) index)."""
    return tx.scalar("SELECT count(*) FROM certificates WHERE issuer = ? AND status = ?", (issuer, REVOKED)) or 0


def store_entries(tx: Tx, issuer: str, entries: Sequence[tuple[str, bytes]]) -> None:
    """Keep the encoded entries ``(serial hex, der)`` of newly revoked certificates; a stale
    entry (the cache outlived a database restore, say) must not block the new one."""
    if entries:
        tx.executemany("DELETE FROM crl_entries WHERE issuer = ? AND serial = ?",
                       [(issuer, serial) for serial, _ in entries])
        INSERT_ENTRIES(tx, [(issuer, serial, der) for serial, der in entries])


def cached_entries(tx: Tx, issuer: str) -> list[bytes]:
    """The cached entries of ``issuer``, in serial order (one range scan)."""
    return [der for (der,) in tx.all("SELECT der FROM crl_entries WHERE issuer = ? ORDER BY serial", (issuer,))]


def clear_entries(tx: Tx, issuer: str) -> None:
    tx.execute("DELETE FROM crl_entries WHERE issuer = ?", (issuer,))


def insert_entries(tx: Tx, rows: Sequence[tuple[str, str, bytes]]) -> None:
    """Cache ``(issuer, serial hex, der)`` rows (multi-row INSERTs)."""
    INSERT_ENTRIES(tx, rows)


def revoked_rows(tx: Tx, issuer: str, chunk: int) -> Iterator[list[tuple]]:
    """(serial, revoked_at or not_after, reason) of every revoked certificate of
    ``issuer``, ordered by the stored serial (as text), ``chunk`` rows at a time.

    On SQLite the times are the stored text (``encode_stored_entries`` reads it without
    building a datetime per row), sorted by SQLite: ``ORDER BY +serial`` keeps the
    (issuer, status) index for the WHERE, which reads the table in row order, and sorts
    in a temporary B-tree; ordered through the (issuer, serial) index instead, SQLite
    reads the table all over (1M rows: 4-7 s, not about 2). Elsewhere: datetimes from
    the driver, sorted in Python.
    """
    if tx.dialect == SQLITE:
        threads = tx.scalar("PRAGMA threads")
        try:
            # one helper thread for SQLite's sorter: it sorts what was read so far while
            # the rows are read on (https://sqlite.org/pragma.html#pragma_threads)
            tx.execute("PRAGMA threads = 1")
            yield from tx.chunks("SELECT serial, coalesce(revoked_at, not_after), revocation_reason"
                                 " FROM certificates WHERE issuer = ? AND status = ? ORDER BY +serial",
                                 (issuer, REVOKED), chunk)
        finally:
            tx.execute(f"PRAGMA threads = {int(threads)}")
        return
    rows = tx.all("SELECT serial, revoked_at, revocation_reason, not_after FROM certificates"
                  " WHERE issuer = ? AND status = ?", (issuer, REVOKED))
    rows.sort(key=operator.itemgetter(0))
    for start in range(0, len(rows), chunk):
        yield [(serial, revoked_at or not_after, reason)
               for serial, revoked_at, reason, not_after in rows[start:start + chunk]]


def crl_state(tx: Tx, issuer: str) -> CrlStateRow | None:
    row = tx.one("SELECT crl_number, der, entry_count FROM crl_state WHERE issuer = ?", (issuer,))
    return None if row is None else CrlStateRow(row[0] or 0, row[1], row[2])


def save_crl(tx: Tx, issuer: str, number: int, this_update: dt.datetime, next_update: dt.datetime,
             der: bytes, entry_count: int) -> None:
    """Store CRL number ``number`` of ``issuer`` (its published_number is left as it is)."""
    tx.execute("INSERT INTO crl_state (issuer, crl_number, this_update, next_update, der, entry_count)"
               " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (issuer) DO UPDATE SET crl_number = excluded.crl_number,"
               " this_update = excluded.this_update, next_update = excluded.next_update,"
               " der = excluded.der, entry_count = excluded.entry_count",
               (issuer, number, this_update, next_update, der, entry_count))


def lock_crl_states(tx: Tx, issuers: Sequence[str]) -> None:
    """Take the write lock on these CAs' rows (SQLite: on the database) before reading their
    CRL numbers, so that two publishers queue instead of reusing a CRL number."""
    if issuers:
        tx.execute(f"UPDATE crl_state SET crl_number = crl_number WHERE issuer IN ({placeholders(len(issuers))})",
                   list(issuers))


def published_states(tx: Tx) -> dict[str, dict]:
    """Per CA with a stored CRL: crl_number, this_update, next_update, entries (no DER)."""
    rows = tx.all("SELECT issuer, crl_number, this_update, next_update, entry_count FROM crl_state"
                  " WHERE der IS NOT NULL")
    return {issuer: {"crl_number": number, "this_update": utc(this), "next_update": utc(nxt), "entries": count}
            for issuer, number, this, nxt, count in rows}


def stored_der(tx: Tx, issuer: str) -> bytes | None:
    return tx.scalar("SELECT der FROM crl_state WHERE issuer = ?", (issuer,))


def stored_ders(tx: Tx, issuers: Sequence[str]) -> dict[str, bytes]:
    """The last CRL stored for each CA of ``issuers`` that has one (DER by CA name)."""
    if not issuers:
        return {}
    return dict(tx.all(f"SELECT issuer, der FROM crl_state WHERE issuer IN ({placeholders(len(issuers))})"
                       " AND der IS NOT NULL", list(issuers)))


def crl_numbers(tx: Tx) -> dict[str, int]:
    return dict(tx.all("SELECT issuer, crl_number FROM crl_state"))


def crl_number_sum(tx: Tx) -> int:
    """The sum of every CA's CRL number (moves with each CRL signed)."""
    return tx.scalar("SELECT coalesce(sum(crl_number), 0) FROM crl_state") or 0
