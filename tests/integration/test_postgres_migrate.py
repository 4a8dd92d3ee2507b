"""Migrations on PostgreSQL: through Alembic on psycopg 3, under a lock, so that replicas
opening a fresh database at the same moment never race."""

from __future__ import annotations

import multiprocessing

import psycopg

from mtlskit.store.db import SCHEMA_HEAD
from mtlskit.store import db as store_db

REPLICAS = 4


def _open_at_barrier(url: str, barrier, results) -> None:
    from mtlskit.store.inventory import Inventory

    barrier.wait()
    try:
        inventory = Inventory.open(url)
        with inventory.db.read() as tx:
            results.put(("ok", tx.scalar("SELECT value FROM change_counters WHERE topic = ?", ("certificates",))))
    except BaseException as exc:  # reported to the parent, which fails the test
        results.put(("error", f"{type(exc).__name__}: {exc}"))


def test_replicas_opening_a_fresh_database_at_once_migrate_it_once(postgres_server):
    url = postgres_server.create_database(with_schema=False)
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(REPLICAS), context.Queue()
    processes = [context.Process(target=_open_at_barrier, args=(url, barrier, results)) for _ in range(REPLICAS)]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(30)
        assert process.exitcode == 0
    assert outcomes == [("ok", 0)] * REPLICAS
    with psycopg.connect(url) as connection:
        assert connection.execute("SELECT version_num FROM alembic_version").fetchall() == [(SCHEMA_HEAD,)]


def test_alembic_runs_on_psycopg_3():
    assert store_db.alembic_url("postgresql://u@h:5/db") == "postgresql+psycopg://u@h:5/db"
    assert store_db.alembic_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert store_db.alembic_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert store_db.alembic_url("sqlite:////x/inventory.db") == "sqlite:////x/inventory.db"
