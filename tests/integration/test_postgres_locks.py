"""Locks that must span hosts are database locks on PostgreSQL (store/locks.py): responder
renewal and serve's TLS certificate wait for an advisory lock that any other host may
hold; several replicas opening at once renew once."""

from __future__ import annotations

import multiprocessing
import threading

import psycopg
import pytest

from mtlskit.clock import SystemClock
from mtlskit.config import load_settings
from mtlskit.publish.responder import ResponderKeeper
from mtlskit.service import Service
from mtlskit.store.locks import RESPONDERS, SERVE_TLS, lock_key

REPLICAS = 4


@pytest.fixture
def pg_home(cli, tmp_path, postgres_url):
    home = tmp_path / "home"
    assert cli("--database-url", postgres_url, "--home", home, "init", "--name", "Lock CA", "--no-passphrase").code == 0
    return home, postgres_url


def _service(home):
    return Service.open(load_settings(home, environ={}), SystemClock())


def _held_elsewhere(url: str, name: str):
    """A connection of "another host" holding the advisory lock ``name``."""
    connection = psycopg.connect(url, autocommit=True)
    connection.execute("SELECT pg_advisory_lock(%s)", (lock_key(name),))
    return connection


def _run_while_held(url: str, name: str, work) -> None:
    other = _held_elsewhere(url, name)
    done = threading.Event()
    worker = threading.Thread(target=lambda: (work(), done.set()))
    worker.start()
    assert not done.wait(0.5), "went ahead while another host held the lock"
    other.execute("SELECT pg_advisory_unlock(%s)", (lock_key(name),))
    other.close()
    worker.join(30)
    assert done.is_set()


def test_responder_renewal_waits_for_the_database_lock(pg_home):
    home, url = pg_home
    service = _service(home)
    keeper = ResponderKeeper(home / "ocsp", service.authority(lambda: None).signers, service.inventory, SystemClock())
    _run_while_held(url, RESPONDERS, keeper.current)
    assert (home / "ocsp").is_dir()


def test_serve_tls_renewal_waits_for_the_database_lock(pg_home):
    from mtlskit.api.tls import TlsKeeper, TlsNames

    home, url = pg_home
    service = _service(home)
    keeper = TlsKeeper(home / "tls", service.authority(lambda: None), service.inventory, SystemClock(),
                       TlsNames.for_host(["ca.example"], []))
    _run_while_held(url, SERVE_TLS, keeper.current)
    assert (home / "tls" / "server.key.pem").exists()


def _keep_responders(home, barrier, results) -> None:
    barrier.wait()
    try:
        service = _service(home)
        keeper = ResponderKeeper(home / "ocsp", service.authority(lambda: None).signers, service.inventory,
                                 SystemClock())
        results.put(sorted((name, r.certificate.serial_number) for name, r in keeper.current().items()))
    except BaseException as exc:
        results.put(f"{type(exc).__name__}: {exc}")


def test_replicas_starting_at_once_renew_the_responders_once(pg_home):
    home, url = pg_home
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(REPLICAS), context.Queue()
    processes = [context.Process(target=_keep_responders, args=(home, barrier, results)) for _ in range(REPLICAS)]
    for process in processes:
        process.start()
    seen = [results.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(30)
    assert all(found == seen[0] for found in seen), seen   # every replica signs with the same responders
    with psycopg.connect(url) as connection:
        recorded = connection.execute("SELECT issuer, count(*) FROM certificates WHERE profile = 'ocsp'"
                                      " GROUP BY issuer ORDER BY issuer").fetchall()
    assert recorded == [("intermediate", 1), ("root", 1)]
