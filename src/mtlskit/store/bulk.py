"""INSERT of many rows at once: batch issuance, the CRL entry cache."""

from __future__ import annotations

import datetime as dt
from typing import Callable, Sequence

from sqlalchemy import Connection, Table, insert


class BulkInsert:
    """INSERT of many rows given as value tuples in the order of ``columns``.

    On SQLite it is one DBAPI executemany of the tuples: SQLAlchemy Core's executemany
    builds and type-processes a parameter dictionary per row, which costs more than
    SQLite's own insert. SQLAlchemy still compiles the statement and supplies each column
    type's bind processing, and a timestamp repeated on every row (a batch's) is
    processed once. Other databases get Core's executemany: their drivers'
    ``executemany`` is a loop of round trips that Core's batching avoids.
    """

    def __init__(self, table: Table, columns: tuple[str, ...]) -> None:
        self.table, self.columns = table, columns
        self._compiled: dict[str, tuple[str, list]] = {}

    def __call__(self, connection: Connection, rows: Sequence[tuple]) -> None:
        if not rows:
            return
        if connection.dialect.name != "sqlite":
            connection.execute(insert(self.table), [dict(zip(self.columns, row)) for row in rows])
            return
        statement, processors = self._prepare(connection.dialect)
        if processors:
            caches = [(index, process, {}) for index, process in processors]
            rows = [_processed(row, caches) for row in rows]
        connection.exec_driver_sql(statement, rows)

    def _prepare(self, dialect) -> tuple[str, list]:
        prepared = self._compiled.get(dialect.name)
        if prepared is None:
            compiled = insert(self.table).compile(dialect=dialect, column_keys=list(self.columns))
            if tuple(compiled.positiontup or ()) != self.columns:
                raise RuntimeError(f"unexpected parameters for {self.table.name}: {compiled.positiontup}")
            processors = [(index, self.table.c[name].type.dialect_impl(dialect).bind_processor(dialect))
                          for index, name in enumerate(self.columns)]
            prepared = compiled.string, [(i, p) for i, p in processors if p is not None]
            self._compiled[dialect.name] = prepared
        return prepared


def _processed(row: tuple, caches: list[tuple[int, Callable, dict]]) -> tuple:
    values = list(row)
    for index, process, cache in caches:
        value = values[index]
        if not isinstance(value, dt.datetime):
            values[index] = process(value)
            continue
        # Equal aware datetimes may differ in offset, and SQLite stores the local fields.
        key = (value, value.utcoffset())
        try:
            values[index] = cache[key]
        except KeyError:
            values[index] = cache[key] = process(value)
    return tuple(values)
