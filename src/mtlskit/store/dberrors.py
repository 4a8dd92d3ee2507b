"""The DB-API errors of either driver (sqlite3, psycopg), told apart without importing psycopg."""

from __future__ import annotations

import sqlite3
import sys


def database_errors() -> tuple[type[BaseException], ...]:
    """The base error classes of every driver loaded in this process (for ``except``)."""
    psycopg = sys.modules.get("psycopg")
    return (sqlite3.Error,) if psycopg is None else (sqlite3.Error, psycopg.Error)


def is_integrity_error(exc: BaseException) -> bool:
    """A constraint refused the statement (unique, foreign key, not null, ...): both drivers
    name the class ``IntegrityError`` (PEP 249), psycopg's subclasses derive from it."""
    return any(kind.__name__ == "IntegrityError" for kind in type(exc).__mro__)
