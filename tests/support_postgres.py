"""A real PostgreSQL for the tests: Debian's server binaries, started by the tests themselves.

``PostgresServer.start()`` runs ``initdb`` in a new temporary directory and starts
``postgres`` on a free port of 127.0.0.1, its unix socket in that directory too; as an
unprivileged user when the tests run as root (PostgreSQL refuses to run as root). It is
stopped by PID (``close``) and its directory removed. Durability is switched off
(fsync, synchronous_commit, full_page_writes): a test server holds nothing worth a flush.

Each test gets a database of its own: ``server.create_database()`` copies a template
(``CREATE DATABASE ... TEMPLATE``), by default one that already holds mtlskit's schema,
so a test pays neither Alembic's import nor the migrations.

    server = PostgresServer.start()
    url = server.create_database()      # postgresql://postgres@127.0.0.1:PORT/test_1
    ...
    server.close()
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SUPERUSER = "postgres"
SCHEMA_TEMPLATE = "mtlskit_schema"
# Debian installs the server outside PATH (the postgresql-common wrappers are for its own
# clusters); the newest major version present wins.
BIN_GLOB = "/usr/lib/postgresql/*/bin"
UNPRIVILEGED_USERS = ("postgres", "nobody")
# Not UTC, and not a whole hour: a datetime stored or read in the session's zone shows.
SERVER_TIME_ZONE = "Asia/Kolkata"
_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 15.0


def server_bin_dir() -> Path | None:
    """The directory of Debian's PostgreSQL server binaries (``initdb``, ``postgres``)."""
    found = [Path(d) for d in glob.glob(BIN_GLOB) if (Path(d) / "initdb").exists()]
    return max(found, key=lambda d: int(d.parent.name)) if found else None


def available() -> bool:
    return server_bin_dir() is not None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _unprivileged() -> pwd.struct_passwd | None:
    """The user the server runs as when the tests run as root (None: run as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in UNPRIVILEGED_USERS:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root and no unprivileged user (postgres, nobody) to run PostgreSQL")


def _as_user(user: pwd.struct_passwd | None, argv: list[str]) -> list[str]:
    if user is None:
        return argv
    return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups",
            "--inh-caps=-all", *argv]


def _child_env() -> dict[str, str]:
    """A small environment: no PG* variable of the developer's, C locale."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C", "LC_ALL": "C"}


class PostgresServer:
    """One running PostgreSQL cluster in a temporary directory."""

    def __init__(self, root: Path, port: int, process: subprocess.Popen, log: Path) -> None:
        self.root, self.port, self.process, self.log = root, port, process, log
        self.socket_dir = root
        self._names = itertools.count(1)
        self._template_ready = False

    @classmethod
    def start(cls) -> "PostgresServer":
        bin_dir = server_bin_dir()
        if bin_dir is None:
            raise RuntimeError(f"no PostgreSQL server binaries in {BIN_GLOB} (apt-get install postgresql)")
        user = _unprivileged()
        root = Path(tempfile.mkdtemp(prefix="mtlskit-pg-"))
        if user is not None:
            os.chown(root, user.pw_uid, user.pw_gid)
        data, log = root / "data", root / "server.log"
        subprocess.run(_as_user(user, [str(bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER,
                                       "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"]),
                       check=True, env=_child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _allow_passwords(data)
        port = _free_port()
        with open(log, "ab") as log_file:
            process = subprocess.Popen(
                _as_user(user, [str(bin_dir / "postgres"), "-D", str(data), "-p", str(port),
                                "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={root}",
                                "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                                "-c", "max_connections=200", "-c", "shared_buffers=64MB",
                                "-c", f"TimeZone={SERVER_TIME_ZONE}"]),
                env=_child_env(), stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
        server = cls(root, port, process, log)
        try:
            server._wait_ready()
        except BaseException:
            server.close()
            raise
        return server

    # --- URLs and databases ---------------------------------------------------------

    def url(self, database: str = "postgres", user: str = SUPERUSER, password: str | None = None) -> str:
        credentials = user if password is None else f"{user}:{password}"
        return f"postgresql://{credentials}@127.0.0.1:{self.port}/{database}"

    def admin(self, sql: str, params: tuple = (), database: str = "postgres") -> list[tuple]:
        """Run one statement as the superuser, outside a transaction (CREATE DATABASE needs that)."""
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as connection:
            cursor = connection.execute(sql, params)
            return cursor.fetchall() if cursor.description else []

    def create_database(self, with_schema: bool = True) -> str:
        """A new empty database (``with_schema``: holding mtlskit's migrated schema); its URL."""
        name = f"test_{os.getpid()}_{next(self._names)}"
        template = SCHEMA_TEMPLATE if with_schema else "template0"
        if with_schema:
            self._ensure_schema_template()
        self.admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _ensure_schema_template(self) -> None:
        if self._template_ready:
            return
        from mtlskit.store.db import make_engine, migrate

        self.admin(f'CREATE DATABASE "{SCHEMA_TEMPLATE}" TEMPLATE template0')
        engine = make_engine(self.url(SCHEMA_TEMPLATE))
        try:
            migrate(engine)
        finally:
            engine.dispose()
        self._template_ready = True

    # --- life --------------------------------------------------------------------------

    def _wait_ready(self) -> None:
        import psycopg

        deadline = time.monotonic() + _START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.process.returncode}: {self.log.read_text()[-2000:]}")
            try:
                psycopg.connect(self.url(), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"postgres did not accept connections: {self.log.read_text()[-2000:]}")
                time.sleep(0.05)

    def close(self) -> None:
        """Fast shutdown (SIGINT) by PID, SIGKILL past the timeout; then the directory goes."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(_STOP_TIMEOUT)
        shutil.rmtree(self.root, ignore_errors=True)


def _allow_passwords(data: Path) -> None:
    """The superuser connects without a password (trust); every other role over TCP needs
    its password (scram-sha-256), so tests can check what a wrong one does."""
    (data / "pg_hba.conf").write_text(
        "local all all trust\n"
        f"host all {SUPERUSER} 127.0.0.1/32 trust\n"
        "host all all 127.0.0.1/32 scram-sha-256\n")
