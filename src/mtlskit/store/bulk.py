"""INSERT of many rows at once: batch issuance, the CRL entry cache."""

from __future__ import annotations

import datetime as dt
from itertools import chain
from typing import Sequence

from mtlskit.store.sql import SQLITE, Tx, sqlite_datetime


class BulkInsert:
    """INSERT of many rows given as value tuples in the order of ``columns``.

    The rows go in multi-row statements (``VALUES (?, ?), (?, ?), ...``, as many rows as
    ``MAX_PARAMETERS`` allows), one executemany of the full statements and one statement
    for the rest: the driver's executemany of a one-row INSERT costs more per row than
    the database's insert does (SQLite, 1M rows of three columns: about 3-4 s one row per
    statement, under 2 s 333 rows per statement), and on PostgreSQL each statement is a
    round trip. On SQLite the datetimes of ``datetime_columns`` are turned into their
    stored text here, once per distinct value (a batch shares its timestamps), instead
    of once per row by the sqlite3 module's adapter.
    """

    #: Parameters per statement: 999 at most, the limit of SQLite before 3.32
    #: (https://sqlite.org/limits.html#max_variable_number).
    MAX_PARAMETERS = 999

    def __init__(self, table: str, columns: tuple[str, ...], datetime_columns: tuple[str, ...] = ()) -> None:
        self.table, self.columns = table, columns
        self._datetimes = [columns.index(name) for name in datetime_columns]
        self._per_statement = self.MAX_PARAMETERS // len(columns)
        self._row = "(" + ", ".join("?" * len(columns)) + ")"
        self._head = f"INSERT INTO {table} ({', '.join(columns)}) VALUES "

    def statement(self, rows: int) -> str:
        """The INSERT of ``rows`` rows."""
        return self._head + ", ".join([self._row] * rows)

    def __call__(self, tx: Tx, rows: Sequence[tuple]) -> None:
        if not rows:
            return
        if self._datetimes and tx.dialect == SQLITE:
            rows = self._stored_datetimes(rows)
        per_statement = self._per_statement
        whole = len(rows) - len(rows) % per_statement
        flat = chain.from_iterable
        if whole:
            tx.executemany(self.statement(per_statement),
                           [tuple(flat(rows[start:start + per_statement])) for start in range(0, whole, per_statement)])
        if whole < len(rows):
            tx.execute(self.statement(len(rows) - whole), tuple(flat(rows[whole:])))

    def _stored_datetimes(self, rows: Sequence[tuple]) -> list[tuple]:
        cache: dict = {}
        indexes = self._datetimes
        processed = []
        for row in rows:
            values = list(row)
            for index in indexes:
                value = values[index]
                if type(value) is dt.datetime:
                    # equal aware datetimes may differ in offset: the key keeps it
                    key = (value, value.utcoffset())
                    text = cache.get(key)
                    if text is None:
                        text = cache[key] = sqlite_datetime(value)
                    values[index] = text
            processed.append(tuple(values))
        return processed
