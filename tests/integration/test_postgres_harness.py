"""The PostgreSQL the tests start themselves (tests/support_postgres.py)."""

from __future__ import annotations

import os
import socket

import psycopg
import pytest

from tests.support_postgres import PostgresServer


def _owner_uid(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("Uid:"):
                return int(line.split()[1])
    raise AssertionError("no Uid line")


def test_server_runs_unprivileged_on_loopback_with_its_socket_in_its_directory(postgres_server):
    assert _owner_uid(postgres_server.process.pid) != 0
    assert (postgres_server.socket_dir / f".s.PGSQL.{postgres_server.port}").exists()
    assert str(postgres_server.socket_dir).startswith("/tmp/") or os.environ.get("TMPDIR")
    listen = postgres_server.admin("SHOW listen_addresses")[0][0]
    assert listen == "127.0.0.1"


def test_each_database_is_fresh_and_holds_the_schema(postgres_server):
    first, second = postgres_server.create_database(), postgres_server.create_database()
    assert first != second
    with psycopg.connect(first, autocommit=True) as connection:
        connection.execute("UPDATE change_counters SET value = 7")
    with psycopg.connect(second) as connection:
        assert connection.execute("SELECT value FROM change_counters").fetchone() == (0,)
        assert connection.execute("SELECT count(*) FROM certificates").fetchone() == (0,)
    empty = postgres_server.create_database(with_schema=False)
    with psycopg.connect(empty) as connection:
        assert connection.execute("SELECT to_regclass('certificates')").fetchone() == (None,)


def test_close_stops_the_server_by_pid_and_removes_its_directory():
    server = PostgresServer.start()
    pid, root, port = server.process.pid, server.root, server.port
    server.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not root.exists()
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0
