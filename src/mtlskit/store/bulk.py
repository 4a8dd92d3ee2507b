"""INSERT of many rows at once: batch issuance, the CRL entry cache."""

from __future__ import annotations

import datetime as dt
from itertools import chain
from operator import itemgetter
from typing import Callable, Sequence

from sqlalchemy import Connection, LargeBinary, Table, insert


class BulkInsert:
    """INSERT of many rows given as value tuples in the order of ``columns``.

    On SQLite it is a DBAPI executemany of multi-row INSERTs (``VALUES (?, ?), (?, ?),
    ...``, as many rows as ``MAX_PARAMETERS`` allows): SQLAlchemy Core's executemany
    builds and type-processes a parameter dictionary per row, and the sqlite3 module's
    own executemany costs more per row than SQLite's insert does (1M rows of three
    columns: about 3-4 s one row per statement, under 2 s 333 rows per statement).
    SQLAlchemy still compiles the statement and supplies each column type's bind
    processing, and a timestamp repeated on every row (a batch's) is processed once.
    Other databases get Core's executemany: their drivers' ``executemany`` is a loop of
    round trips that Core's batching avoids.
    """

    #: Parameters per SQLite statement: 999 at most, the limit of SQLite before 3.32
    #: (https://sqlite.org/limits.html#max_variable_number).
    MAX_PARAMETERS = 999

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
        # LargeBinary's bind processing wraps each value in sqlite3.Binary (a memoryview),
        # which the sqlite3 module binds as the BLOB it binds bytes as: two more objects
        # per row for the garbage collector to walk, for nothing.
        processors = [(index, process) for index, process, binary in processors
                      if not (binary and all(value is None or type(value) is bytes
                                             for value in map(itemgetter(index), rows)))]
        if processors:
            caches = [(index, process, {}) for index, process in processors]
            rows = [_processed(row, caches) for row in rows]
        per_statement = self.MAX_PARAMETERS // len(self.columns)
        whole = len(rows) - len(rows) % per_statement
        values = "(" + ", ".join("?" * len(self.columns)) + ")"  # one row's, as SQLAlchemy writes it
        if whole and statement.endswith(values):
            many = statement + (", " + values) * (per_statement - 1)
            flat = chain.from_iterable
            connection.exec_driver_sql(many, [tuple(flat(rows[start:start + per_statement]))
                                              for start in range(0, whole, per_statement)])
            rows = rows[whole:]
            if not rows:
                return
        connection.exec_driver_sql(statement, rows)

    def _prepare(self, dialect) -> tuple[str, list]:
        """The compiled single-row INSERT and (index, bind processor, is LargeBinary) of
        each column that has a processor."""
        prepared = self._compiled.get(dialect.name)
        if prepared is None:
            compiled = insert(self.table).compile(dialect=dialect, column_keys=list(self.columns))
            if tuple(compiled.positiontup or ()) != self.columns:
                raise RuntimeError(f"unexpected parameters for {self.table.name}: {compiled.positiontup}")
            processors = []
            for index, name in enumerate(self.columns):
                column_type = self.table.c[name].type
                process = column_type.dialect_impl(dialect).bind_processor(dialect)
                if process is not None:
                    processors.append((index, process, isinstance(column_type, LargeBinary)))
            prepared = compiled.string, processors
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
