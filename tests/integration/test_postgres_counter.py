"""The change counter as the OCSP source's change signal on PostgreSQL (store/counter.py)."""

from __future__ import annotations

import psycopg
import pytest

from mtlskit.errors import InternalError
from mtlskit.store.counter import CounterStatusLookup, CounterWatch


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _bump(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("UPDATE change_counters SET value = value + 1 WHERE topic = 'certificates'")


def test_moved_reads_the_counter_at_most_every_poll_interval(postgres_url):
    clock = Clock()
    watch = CounterWatch(postgres_url, poll_seconds=0.15, monotonic=clock)
    assert watch.moved()            # the first read: nothing seen before
    assert not watch.moved()        # within the interval: not read again
    _bump(postgres_url)
    assert not watch.moved()        # still within the interval
    clock.now += 0.15
    assert watch.moved() and watch.value() == 1
    clock.now += 0.15
    assert not watch.moved()        # read again, unchanged
    watch.close()


def test_an_unreadable_database_says_moved_and_the_marker_raises(postgres_server):
    url = postgres_server.create_database()
    clock = Clock()
    watch = CounterWatch(url, poll_seconds=0.15, monotonic=clock)
    assert watch.moved()
    postgres_server.drop_database(url)   # every connection to it is closed by force
    clock.now += 1
    assert watch.moved()                 # the source then reads the marker, and answers tryLater
    with pytest.raises(InternalError):
        watch.value()


def test_the_lookup_says_everything_changed_when_the_counter_moved(postgres_url):
    class Base:
        def state(self, issuer, serial):
            return (issuer, serial)

    lookup = CounterStatusLookup(Base(), CounterWatch(postgres_url))
    marker = lookup.change_marker()
    _bump(postgres_url)
    assert lookup.changed_since(marker) == (marker + 1, None)
    assert lookup.state("intermediate", 5) == ("intermediate", 5)


def test_the_inventory_watch_of_postgresql_is_the_change_counter(postgres_url):
    """store.changes.change_watch: what serve's OCSP source and /authz watch on PostgreSQL."""
    from mtlskit.store.changes import change_watch
    from mtlskit.store.sql import Database

    watch = change_watch(Database.open(postgres_url), interval=3600)
    assert isinstance(watch, CounterWatch)
    assert watch.moved()             # the first read
    _bump(postgres_url)
    assert watch.value() == 1        # an interval watch would say nothing for an hour
    watch.close()
