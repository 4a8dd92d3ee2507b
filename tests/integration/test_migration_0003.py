"""Migration 0003: existing CRLs count as published; the reload commands older versions
recorded (``apache2 -k graceful`` starts an Apache that is not running) become signals."""

from __future__ import annotations

import datetime as dt

from alembic import command
from sqlalchemy import text

from mtlskit.store.db import _alembic_config, make_engine, migrate
from mtlskit.store.inventory import Inventory
from mtlskit.store.publication import pending_crls
from mtlskit.store.sql import Database

LEGACY = [  # (server, directory, recorded reload, what it becomes)
    ("nginx", "/srv/n", "nginx -p /srv/n -c /srv/n/nginx.conf -s reload", "signal:HUP:nginx:/srv/n/nginx.pid"),
    ("nginx", "/srv/ni", "nginx -s reload", "signal:HUP:nginx:/run/nginx.pid"),
    ("apache", "/srv/a", "apache2 -f /srv/a/httpd.conf -k graceful", "signal:USR1:apache2:/srv/a/apache.pid"),
    ("apache", "/srv/ai", "apache2ctl graceful", "signal:USR1:apache2:/run/apache2/apache2.pid"),
    ("haproxy", "/srv/h", "socket:/srv/h/admin.sock", "socket:/srv/h/admin.sock"),
    ("haproxy", "/srv/hi", None, "socket:/run/haproxy/admin.sock"),
    ("nginx", "/srv/user", "systemctl reload nginx", "systemctl reload nginx"),   # the user's own: kept
]


def test_migration_0003_marks_stored_crls_published_and_rewrites_legacy_reloads(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    engine = make_engine(url)
    config = _alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0002_crl")
    now = dt.datetime(2026, 1, 1)
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO crl_state (issuer, crl_number, der) VALUES ('root', 3, x'30')"))
        for server, directory, reload_command, _ in LEGACY:
            connection.execute(text(
                "INSERT INTO deployments (server, name, directory, revocation, reload_command, options, "
                "created_at, updated_at) VALUES (:s, 'n', :d, 'crl', :r, '{}', :t, :t)"),
                {"s": server, "d": directory, "r": reload_command, "t": now})

    engine.dispose()
    database = Database.open(url)
    migrate(database)

    assert pending_crls(Inventory(database)) == {}
    with database.read() as tx:
        recorded = dict(tx.all("SELECT directory, reload_command FROM deployments"))
    assert recorded == {directory: new for _, directory, _, new in LEGACY}
