"""A long-running service re-publishes CRLs before they go stale."""

import datetime as dt

from cryptography import x509

from mtlskit.clock import FixedClock
from mtlskit.config import load_settings
from mtlskit.publish import crls
from mtlskit.publish.refresher import CrlRefresher
from mtlskit.service import Service


def _number(der: bytes) -> int:
    return x509.load_der_x509_crl(der).extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def test_missing_then_stale_crls_are_published_and_fresh_ones_left_alone(fresh_home):
    clock = FixedClock(dt.datetime.now(dt.timezone.utc))
    service = Service.open(load_settings(fresh_home), clock)
    refresher = CrlRefresher(service, service.authority(lambda: None))

    assert refresher.publish_due() == ["intermediate", "root"]  # none published yet
    first = {name: _number(crls.current_crl_der(service, name)) for name in ("root", "intermediate")}
    clock.advance(dt.timedelta(days=3))
    assert refresher.publish_due() == []  # 4 of 7 days left: still fresh
    clock.advance(dt.timedelta(days=1))
    assert refresher.publish_due() == ["intermediate"]  # half the lifetime has passed
    clock.advance(dt.timedelta(days=179))  # the root's CRL lives root_crl_days (365): half of it
    assert refresher.publish_due() == ["intermediate", "root"]
    after = {name: _number(crls.current_crl_der(service, name)) for name in ("root", "intermediate")}
    assert after["root"] == first["root"] + 1 and after["intermediate"] > first["intermediate"] + 1
    crl = x509.load_der_x509_crl(crls.current_crl_der(service, "intermediate"))
    assert crl.next_update_utc - clock.now() > dt.timedelta(days=6)


def test_tick_runs_in_the_background_at_most_once_per_interval(fresh_home):
    clock = FixedClock(dt.datetime.now(dt.timezone.utc))
    service = Service.open(load_settings(fresh_home), clock)
    refresher = CrlRefresher(service, service.authority(lambda: None), check_every=dt.timedelta(minutes=10))
    thread = refresher.tick()
    assert thread is not None
    thread.join(30)
    assert crls.due_for_refresh(service) == []
    assert refresher.tick() is None  # checked a moment ago
    clock.advance(dt.timedelta(days=4))
    later = refresher.tick()
    assert later is not None
    later.join(30)
    assert crls.due_for_refresh(service) == []


def test_a_failed_refresh_is_logged_and_does_not_stop_the_service(fresh_home, caplog):
    clock = FixedClock(dt.datetime.now(dt.timezone.utc))
    service = Service.open(load_settings(fresh_home), clock)
    refresher = CrlRefresher(service, service.authority(lambda: None))
    service.settings.crl_dir.write_text("a file where the CRL directory should be")  # export fails
    refresher.tick().join(30)
    assert "could not refresh the CRLs" in caplog.text
    assert refresher._busy.acquire(blocking=False), "the refresher stayed locked after a failure"
