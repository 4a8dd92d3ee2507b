"""Batch issuance through the worker pool: what the inventory records is what the
certificates on disk say, the bundles are complete with safe modes, and a failure in a
worker or in the database leaves every certificate recorded with its files, or absent."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mtlskit.issue import pool as pool_of, workflow
from mtlskit.issue.bundle import BundleOptions
from mtlskit.issue.issuer import IssueRequest, record_of
from mtlskit.issue.profiles import get_profile
from mtlskit.pki.keys import KeyType
from mtlskit.errors import AlreadyExists
from mtlskit.store.db import make_engine
from mtlskit.store.inventory import CERTIFICATE_COLUMNS, CertificateRecord, Inventory
from mtlskit.store.models import CertificateRow
from tests.support_crl import open_service

COUNT = 2 * pool_of.PARALLEL_THRESHOLD + 5  # enough for two workers


def _names(count: int, prefix: str = "dev") -> list[str]:
    return [f"{prefix}-{i:04d}" for i in range(count)]


def _cli_names_file(tmp_path, names: list[str]):
    path = tmp_path / "names.txt"
    path.write_text("".join(f"{n}\n" for n in names))
    return path


def test_records_are_what_the_certificates_say(fresh_home, tmp_path, cli):
    names = _names(COUNT)
    out = tmp_path / "fleet"
    result = cli("--home", fresh_home, "issue", "client", "--from", _cli_names_file(tmp_path, names),
                 "--out", out, "--json")
    assert result.code == 0, result.err
    printed = json.loads(result.out)
    assert [p["name"] for p in printed] == names
    inventory = open_service(fresh_home).inventory
    chain = (fresh_home / "ca" / "intermediate.pem").read_bytes()
    for entry in printed:
        bundle = out / entry["name"]
        cert_pem = (bundle / "cert.pem").read_bytes()
        cert = x509.load_pem_x509_certificate(cert_pem)
        [stored] = inventory.by_name(entry["name"])
        expected = record_of(cert, "intermediate", entry["name"], "client")
        assert stored == dataclasses.replace(expected, directory=str(bundle))
        assert entry["serial"] == format(cert.serial_number, "x")
        assert (bundle / "fullchain.pem").read_bytes() == cert_pem + chain
        key = serialization.load_pem_private_key((bundle / "key.pem").read_bytes(), None)
        assert key.public_key() == cert.public_key()
        assert stat.S_IMODE((bundle / "key.pem").stat().st_mode) == 0o600
        assert sorted(p.name for p in bundle.iterdir()) == ["ca.pem", "cert.pem", "chain.pem",
                                                            "fullchain.pem", "key.pem"]
    events = [e for e in inventory.events(limit=10 * COUNT) if e["action"] == "issue"]
    assert sorted((e["serial"], e["detail"]["name"]) for e in events) == \
        sorted((p["serial"], p["name"]) for p in printed)
    assert all(e["detail"] == {"name": e["detail"]["name"], "profile": "client"} for e in events)
    assert sorted(os.listdir(out)) == names  # no staging or shared-chain directory left


def test_an_empty_output_directory_is_replaced_and_a_full_one_refused(ca_home, tmp_path, cli):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli("--home", ca_home, "issue", "client", "solo", "--out", empty).code == 0
    assert (empty / "cert.pem").exists()
    result = cli("--home", ca_home, "issue", "client", "solo", "--out", empty)
    assert result.code == 4 and "already exists and is not empty" in result.err


def test_leftover_staging_directory_is_refused_before_anything_is_written(ca_home, tmp_path, cli):
    out = tmp_path / "fleet"
    (out / ".dev-0002.partial").mkdir(parents=True)
    names = _names(COUNT)
    result = cli("--home", ca_home, "issue", "client", "--from", _cli_names_file(tmp_path, names), "--out", out)
    assert result.code == 4 and f"{out / '.dev-0002.partial'} is left over from an interrupted run" in result.err
    assert os.listdir(out) == [".dev-0002.partial"]


def _assert_recorded_or_absent(home, out, cli, expected: list[str]) -> None:
    listed = {r["name"]: r["serial"] for r in
              json.loads(cli("--home", home, "list", "--profile", "client", "--json").out)}
    assert set(listed) == set(os.listdir(out)) == set(expected)
    for name in expected:
        cert = x509.load_pem_x509_certificate((out / name / "cert.pem").read_bytes())
        assert listed[name] == format(cert.serial_number, "x")


def test_a_failing_worker_keeps_the_committed_chunks_only(fresh_home, tmp_path, cli, monkeypatch):
    monkeypatch.setattr(workflow, "CHUNK_SIZE", 30)
    monkeypatch.setattr(pool_of, "TASK_SIZE", 7)
    real_write = workflow.write_bundle

    def failing_write(directory, name, *args, **kwargs):  # runs in the forked workers
        if name == "dev-0100":
            raise OSError("no space left on device")
        return real_write(directory, name, *args, **kwargs)

    monkeypatch.setattr(workflow, "write_bundle", failing_write)
    names = _names(COUNT)
    out = tmp_path / "out"
    result = cli("--home", fresh_home, "issue", "client", "--from", _cli_names_file(tmp_path, names), "--out", out)
    assert result.code == 5 and "internal error" in result.err
    _assert_recorded_or_absent(fresh_home, out, cli, names[:90])  # three chunks of 30


def test_a_failing_commit_in_the_pool_keeps_the_committed_chunks_only(fresh_home, tmp_path, cli, monkeypatch):
    monkeypatch.setattr(workflow, "CHUNK_SIZE", 50)
    real_add = Inventory.add_certificates
    calls = []

    def failing_add(self, records, at, action="issue", session=None):
        calls.append(len(records))
        if len(calls) == 2:
            raise OSError("database is locked")
        return real_add(self, records, at, action, session)

    monkeypatch.setattr(Inventory, "add_certificates", failing_add)
    names = _names(COUNT)
    out = tmp_path / "out"
    result = cli("--home", fresh_home, "issue", "client", "--from", _cli_names_file(tmp_path, names), "--out", out)
    assert result.code == 5 and "internal error" in result.err
    assert calls == [50, 50]
    _assert_recorded_or_absent(fresh_home, out, cli, names[:50])


@pytest.mark.parametrize("key_type", ["ed25519", "ec-p384"])  # RSA: slow to generate; unit-tested
def test_every_key_type_through_the_pool(ca_home, tmp_path, cli, key_type):
    names = _names(COUNT, key_type)
    out = tmp_path / "fleet"
    result = cli("--home", ca_home, "issue", "peer", "--from", _cli_names_file(tmp_path, names),
                 "--out", out, "--key-type", key_type)
    assert result.code == 0, result.err
    inventory = open_service(ca_home).inventory
    for name in (names[0], names[-1]):
        cert = x509.load_pem_x509_certificate((out / name / "cert.pem").read_bytes())
        assert inventory.by_name(name) == [dataclasses.replace(record_of(cert, "intermediate", name, "peer"),
                                                               directory=str(out / name))]
        cert.verify_directly_issued_by(x509.load_pem_x509_certificate((out / name / "chain.pem").read_bytes()))


def _record(serial: int, name: str) -> CertificateRecord:
    at = dt.datetime(2026, 11, 22, 12, 0, 5, tzinfo=dt.timezone.utc)
    return CertificateRecord("intermediate", serial, name, f"CN={name}", ("URI:https://x.invalid/client", "IP:10.0.0.1"),
                             "client", "ec-p256", at, at + dt.timedelta(days=30), f"{serial:064x}",
                             "-----BEGIN CERTIFICATE-----\n...\n")


def test_bulk_rows_are_stored_as_sqlalchemy_core_stored_them(tmp_path):
    inventory = Inventory.open(f"sqlite:///{tmp_path / 'inv.db'}")
    at = dt.datetime(2026, 11, 22, 12, 0, 9, 123456, tzinfo=dt.timezone.utc)
    fast = _record(0xA1, "fast")
    inventory.add_certificates([fast], at)
    core = _record(0xB2, "core")
    engine = make_engine(inventory.db.url)  # the plain Core insert, as before store.sql
    with engine.begin() as connection:
        connection.execute(CertificateRow.__table__.insert(), [dict(zip(CERTIFICATE_COLUMNS, core.row_values(at)))])
    engine.dispose()
    # the same instant in another offset: stored as UTC text (store.sql's contract; SQLAlchemy
    # kept the local fields, so text comparisons mixed instants), the same text as in UTC
    berlin = dt.timezone(dt.timedelta(hours=1))
    shifted = dataclasses.replace(_record(0xC3, "shifted"), not_before=fast.not_before.astimezone(berlin))
    inventory.add_certificates([dataclasses.replace(_record(0xD4, "utc")), shifted], at)
    assert inventory.by_name("fast") == [fast] and inventory.by_name("core") == [core]
    columns = ", ".join(c for c in CERTIFICATE_COLUMNS if c not in ("serial", "name", "subject", "sans",
                                                                    "fingerprint_sha256"))
    with inventory.read() as tx:
        raw = {row[0]: row[1:] for row in tx.all(f"SELECT name, sans, {columns} FROM certificates")}
    assert raw["fast"] == raw["core"] == raw["utc"]
    with inventory.read() as tx:
        stored = dict(tx.all("SELECT name, not_before FROM certificates"))
    assert stored["utc"].startswith("2026-11-22 12:00:05") and stored["shifted"] == stored["utc"]
    [event] = [e for e in inventory.events() if e["serial"] == "a1"]
    assert event["action"] == "issue" and event["detail"] == {"name": "fast", "profile": "client"}
    assert event["at"] == at


def test_a_duplicate_serial_records_nothing_of_its_batch(tmp_path):
    inventory = Inventory.open(f"sqlite:///{tmp_path / 'inv.db'}")
    at = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.timezone.utc)
    inventory.add_certificates([_record(1, "one")], at)
    with pytest.raises(AlreadyExists, match="already in the inventory"):
        inventory.add_certificates([_record(2, "two"), dataclasses.replace(_record(1, "again"), fingerprint_sha256="f" * 64)], at)
    assert inventory.count() == 1 and [e["serial"] for e in inventory.events()] == ["1"]


def test_bundles_into_several_directories(ca_home, tmp_path):
    service = open_service(ca_home)
    authority = service.authority(lambda: None)
    targets = [tmp_path / "a" / "one", tmp_path / "b" / "two", tmp_path / "b" / "deep" / "three"]
    requests = [IssueRequest(get_profile("client"), t.name) for t in targets]
    records = workflow.issue_batch(service, authority, requests, targets, KeyType.EC_P256, BundleOptions())
    assert [r.name for r in records] == ["one", "two", "three"]
    for target, record in zip(targets, records):
        cert = x509.load_pem_x509_certificate((target / "cert.pem").read_bytes())
        assert cert.serial_number == record.serial
        assert not list(target.parent.glob(".*.partial"))
