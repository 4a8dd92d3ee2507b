"""The staged CRL export: files written while the transaction commits, put in place
(os.replace) only after it, never left half-written or behind."""

from __future__ import annotations

import pytest
from cryptography import x509

from mtlskit.publish import crl_files, crls
from mtlskit.revoke.revoker import revoke
from tests.support_crl import issue, make_home, no_passphrase, open_service


@pytest.fixture()
def home(tmp_path):
    home = make_home(tmp_path)
    for name in ("alice", "bob"):
        issue(home, "client", name, tmp_path / "out")
    return home


def _files(home):
    """Every file in HOME/crl/ with its content (temporary files included)."""
    return {p.name: p.read_bytes() for p in (home / "crl").iterdir() if p.is_file() and p.name != ".lock"}


def test_a_failed_transaction_publishes_nothing_and_leaves_no_temporary_file(home, monkeypatch):
    service = open_service(home)
    authority = service.authority(no_passphrase)
    revoke(service, authority, ["alice"])
    before = _files(home)
    staged = []

    def stage_then_fail(self, ders):
        original(self, ders)
        staged.append(ders)
        raise RuntimeError("the commit did not happen")

    original = crl_files.CrlExport.stage
    monkeypatch.setattr(crl_files.CrlExport, "stage", stage_then_fail)
    with pytest.raises(RuntimeError):
        revoke(service, authority, ["bob"])
    assert staged and _files(home) == before  # same files, same bytes, no .tmp
    assert service.inventory.find_one("bob")[0].status == "valid"
    monkeypatch.undo()
    result = revoke(service, authority, ["bob"])
    assert (home / "crl" / "intermediate.crl").read_bytes() == result.crl_ders["intermediate"]


def test_a_crl_older_than_the_inventory_is_not_put_in_place(home):
    service = open_service(home)
    authority = service.authority(no_passphrase)
    old = revoke(service, authority, ["alice"]).crl_ders["intermediate"]
    new = revoke(service, authority, ["bob"]).crl_ders["intermediate"]
    with crls.staged_export(service) as export:
        export.stage({"intermediate": old})  # a slower publisher finishing last
        export.publish()
    files = _files(home)
    assert files["intermediate.crl"] == new and files["intermediate.pem"] == crls.pem_crl(new)
    assert files["bundle.pem"] == crls.crl_bundle_pem(service)  # the staged bundle was stale too
    assert crls.pem_crl(new) in files["bundle.pem"]
    assert not [name for name in files if name.endswith(".tmp")]


def test_the_bundle_is_staged_with_the_stored_crls_of_the_other_cas(home, monkeypatch):
    service = open_service(home)
    authority = service.authority(no_passphrase)
    root = crls.publish(service, authority).ders["root"]

    def not_after_the_commit(*args):
        raise AssertionError("the bundle was made after the commit, not staged")

    monkeypatch.setattr(crl_files, "crl_bundle_pem", not_after_the_commit)
    result = revoke(service, authority, ["alice"])
    assert set(result.crl_ders) == {"intermediate"}  # the root's CRL came from the inventory
    files = _files(home)
    assert files["bundle.pem"] == crls.pem_crl(result.crl_ders["intermediate"]) + crls.pem_crl(root)
    assert set(files) == {"intermediate.crl", "intermediate.pem", "root.crl", "root.pem", "bundle.pem"}


def test_a_failed_write_is_reported_kept_pending_and_cleaned_up(home):
    from mtlskit.store.publication import pending_crls

    service = open_service(home)
    authority = service.authority(no_passphrase)
    revoke(service, authority, ["alice"])
    (home / "crl" / "intermediate.pem").unlink()
    (home / "crl" / "intermediate.pem").mkdir()  # os.replace onto a directory fails
    result = revoke(service, authority, ["bob"])
    assert result.error == f"cannot write the CRL files in {home / 'crl'}: Is a directory"
    assert set(pending_crls(service.inventory)) == {"intermediate"}
    assert not [p for p in (home / "crl").iterdir() if p.name.endswith(".tmp")]
    crl = x509.load_der_x509_crl(crls.current_crl_der(service, "intermediate"))
    assert crl.get_revoked_certificate_by_serial_number(service.inventory.find_one("bob")[0].serial)  # committed


def test_export_crls_writes_every_file(home):
    service = open_service(home)
    result = crls.publish(service, service.authority(no_passphrase))
    files = _files(home)
    assert set(files) == {"intermediate.crl", "intermediate.pem", "root.crl", "root.pem", "bundle.pem"}
    assert files["intermediate.crl"] == result.ders["intermediate"]
    assert files["root.pem"] == crls.pem_crl(result.ders["root"]) and files["bundle.pem"] == result.bundle
    assert (home / "crl" / "root.crl").stat().st_mode & 0o777 == 0o644


def test_temporary_files_of_a_crashed_publisher_are_removed_later(home):
    """A publisher that dies between staging and publishing leaves its temporary files;
    the next publication removes those older than an hour (and no one else's)."""
    import os
    import time

    service = open_service(home)
    authority = service.authority(no_passphrase)
    revoke(service, authority, ["alice"])
    old, fresh = home / "crl" / ".intermediate.crl.abc.tmp", home / "crl" / ".intermediate.pem.def.tmp"
    for path in (old, fresh):
        path.write_bytes(b"half a CRL")
    os.utime(old, (time.time() - 2 * crl_files.ABANDONED_AFTER,) * 2)
    revoke(service, authority, ["bob"])
    assert not old.exists() and fresh.exists()



def test_a_process_clock_ahead_of_the_file_system_keeps_the_staged_files(home, monkeypatch):
    """Issue 10: with the process clock an hour and more ahead of the file system (an NFS
    home, a host with a wrong clock), the staged files looked abandoned and were removed
    after the commit, so the committed CRL was never put in place."""
    import datetime as dt
    import time

    from mtlskit.clock import FixedClock
    from mtlskit.store.publication import pending_crls

    ahead = 2 * crl_files.ABANDONED_AFTER
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + ahead)
    clock = FixedClock(dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=ahead))
    service = open_service(home, clock)
    result = revoke(service, service.authority(no_passphrase), ["alice"])
    serial = result.revoked[0].serial
    published = x509.load_pem_x509_crl((home / "crl" / "intermediate.pem").read_bytes())
    assert published.get_revoked_certificate_by_serial_number(serial) is not None
    assert pending_crls(service.inventory) == {}
    assert not list((home / "crl").glob(".*.tmp"))
