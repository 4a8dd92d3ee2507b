"""The responders of `mtlskit serve`: made at start, renewed at 2/3 of their life while
serving, recorded in the inventory, and answering for the CA that certified them."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.x509 import ocsp as cocsp

from mtlskit.api.wiring import build_worker
from mtlskit.cli.app import main
from mtlskit.clock import FixedClock
from mtlskit.config import load_settings
from mtlskit.service import Service
from tests.support_ocsp import pkilint_cert_findings, request_der


def test_responders_are_renewed_while_serving_and_recorded(tmp_path):
    home = tmp_path / "home"
    assert main(["--home", str(home), "init", "--no-passphrase"]) == 0
    clock = FixedClock(dt.datetime.now(dt.timezone.utc))
    service = Service.open(load_settings(home), clock)
    worker = build_worker(service, service.authority(lambda: None))
    cas = service.ca_certificates()
    first = worker.source.cas["intermediate"].responder.certificate
    assert pkilint_cert_findings(first) == []

    clock.advance(dt.timedelta(days=4))  # 4 of 7 days: not yet due
    worker.periodic()
    assert worker.source.cas["intermediate"].responder.certificate == first

    clock.advance(dt.timedelta(days=1))  # past 2/3 of 7 days
    worker.periodic()
    renewed = worker.source.cas["intermediate"].responder.certificate
    assert renewed.serial_number != first.serial_number
    assert renewed.not_valid_after_utc > first.not_valid_after_utc

    response = cocsp.load_der_ocsp_response(
        worker.source.respond(request_der(cas["intermediate"], cas["root"])).body)
    assert response.certificates[0].issuer == cas["root"].subject
    assert response.certificates[0] == worker.source.cas["root"].responder.certificate

    recorded = service.inventory.query(clock.now(), profile="ocsp")
    assert sorted(r.issuer for r in recorded) == ["intermediate", "intermediate", "root", "root"]
    assert {r.serial for r in recorded} >= {first.serial_number, renewed.serial_number}


def test_a_second_process_picks_up_the_renewed_responder(tmp_path):
    home = tmp_path / "home"
    assert main(["--home", str(home), "init", "--no-passphrase", "--no-intermediate"]) == 0
    clock = FixedClock(dt.datetime.now(dt.timezone.utc))
    settings = load_settings(home)
    one = build_worker(Service.open(settings, clock), Service.open(settings, clock).authority(lambda: None))
    two = build_worker(Service.open(settings, clock), Service.open(settings, clock).authority(lambda: None))
    assert one.source.cas.keys() == {"root"}
    assert one.source.cas["root"].responder.certificate == two.source.cas["root"].responder.certificate
    clock.advance(dt.timedelta(days=6))
    one.periodic()
    two.periodic()  # finds the file renewed by `one` under the lock: no second renewal
    assert one.source.cas["root"].responder.certificate == two.source.cas["root"].responder.certificate
    recorded = Service.open(settings, clock).inventory.query(clock.now(), profile="ocsp")
    assert len(recorded) == 2
    assert x509.load_pem_x509_certificate((home / "ocsp" / "root.pem").read_bytes()) == \
        one.source.cas["root"].responder.certificate
