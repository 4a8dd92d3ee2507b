"""The revoker and the CRL publisher against a real CA home and SQLite inventory."""

from __future__ import annotations

import datetime as dt
import importlib.machinery
import sys
import types

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from mtlskit.clock import FixedClock
from mtlskit.errors import AlreadyRevoked, Ambiguous, BadInput, NotFound
from mtlskit.publish import crls
from mtlskit.revoke.reasons import RevocationReason
from mtlskit.revoke.revoker import revoke
from tests.support_crl import (issue, make_home, no_passphrase, open_service, pkilint_crl_findings,
                               serial_of)


@pytest.fixture()
def pki(tmp_path):
    """A two-tier CA with clients alice, bob, carol and a server www."""
    home = make_home(tmp_path)
    out = tmp_path / "out"
    dirs = {name: issue(home, "client", name, out) for name in ("alice", "bob", "carol")}
    dirs["www"] = issue(home, "server", "www", out, "--dns", "www.example.test")
    return types.SimpleNamespace(home=home, out=out, dirs=dirs,
                                 serial={n: serial_of(d) for n, d in dirs.items()})


def _service(home, at=None):
    clock = FixedClock(at) if at else None
    return open_service(home, clock)


def _authority(service):
    return service.authority(no_passphrase)


def _crl(home, name):
    return x509.load_der_x509_crl((home / "crl" / f"{name}.crl").read_bytes())


def test_revoke_by_name_updates_inventory_audit_crl_and_files(pki):
    service = _service(pki.home)
    marker_before = crls.revocation_marker(service)
    result = revoke(service, _authority(service), ["alice"], RevocationReason.KEY_COMPROMISE)

    serial = pki.serial["alice"]
    assert [r.serial for r in result.revoked] == [serial]
    record = service.inventory.get("intermediate", serial)
    assert record.status == "revoked" and record.revocation_reason == "key-compromise"
    assert record.revoked_at == result.at
    assert {e["action"] for e in service.inventory.events(10)} >= {"revoke", "crl"}

    crl = _crl(pki.home, "intermediate")
    entry = crl.get_revoked_certificate_by_serial_number(serial)
    assert entry is not None and entry.revocation_date_utc == result.at
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason \
        is x509.ReasonFlags.key_compromise
    assert crl.get_revoked_certificate_by_serial_number(pki.serial["bob"]) is None
    assert crl.is_signature_valid(service.ca_certificates()["intermediate"].public_key())
    assert crls.current_crl_der(service, "intermediate") == (pki.home / "crl" / "intermediate.crl").read_bytes()
    # the root had no CRL yet: it was published in the same operation, so the bundle is complete
    assert set(result.crls) == {"intermediate", "root"}
    assert (pki.home / "crl" / "bundle.pem").read_bytes() == crls.crl_bundle_pem(service)
    assert crls.revocation_marker(service) == result.marker > marker_before


def test_several_targets_one_transaction_one_crl(pki):
    service = _service(pki.home)
    authority = _authority(service)
    crls.publish_crls(service, authority)
    number = lambda: _crl(pki.home, "intermediate").extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    before = number()
    result = revoke(service, authority, ["bob", format(pki.serial["carol"], "X"), "bob"],
                    RevocationReason.SUPERSEDED)
    assert sorted(r.name for r in result.revoked) == ["bob", "carol"]  # bob twice counts once
    assert set(result.crls) == {"intermediate"}                         # the root CRL is untouched
    assert number() == before + 1
    crl = _crl(pki.home, "intermediate")
    assert {r.serial_number for r in crl} == {pki.serial["bob"], pki.serial["carol"]}


def test_one_bad_target_refuses_the_whole_batch(pki):
    service = _service(pki.home)
    with pytest.raises(NotFound) as caught:
        revoke(service, _authority(service), ["alice", "nobody"])
    assert caught.value.exit_code == 3 and "nobody" in caught.value.message
    assert service.inventory.get("intermediate", pki.serial["alice"]).status == "valid"
    assert not (pki.home / "crl" / "intermediate.crl").exists()


def test_twice_is_already_revoked_by_name_and_by_serial(pki):
    service = _service(pki.home)
    authority = _authority(service)
    revoke(service, authority, ["alice"])
    serial_hex = format(pki.serial["alice"], "x")
    for target in ("alice", serial_hex):
        with pytest.raises(AlreadyRevoked) as caught:
            revoke(service, authority, [target])
        assert caught.value.message == f"{serial_hex}: certificate is already revoked."
        assert caught.value.exit_code == 4


def test_a_name_designates_every_live_certificate_of_it(pki):
    second = issue(pki.home, "client", "alice", pki.out)
    service = _service(pki.home)
    result = revoke(service, _authority(service), ["bob", "alice"])
    assert {r.serial for r in result.revoked} == {pki.serial["bob"], pki.serial["alice"], serial_of(second)}
    assert service.inventory.get("intermediate", serial_of(second)).status == "revoked"


def test_expired_certificate_only_by_serial(pki):
    short = issue(pki.home, "client", "dave", pki.out, "--days", "1")
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=3)
    service = _service(pki.home, later)
    with pytest.raises(NotFound) as caught:
        revoke(service, _authority(service), ["dave"])
    assert "expired" in caught.value.message and "serial" in caught.value.hint
    result = revoke(service, _authority(service), [format(serial_of(short), "x")])
    assert result.revoked[0].name == "dave"


def test_revocation_date_at_and_future_refused(pki):
    service = _service(pki.home)
    earlier = dt.datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=dt.timezone.utc)
    result = revoke(service, _authority(service), ["alice"], "affiliation-changed", earlier)
    assert result.at == earlier.replace(microsecond=0)
    entry = _crl(pki.home, "intermediate").get_revoked_certificate_by_serial_number(pki.serial["alice"])
    assert entry.revocation_date_utc == earlier.replace(microsecond=0)
    with pytest.raises(BadInput) as caught:
        revoke(service, _authority(service), ["bob"], at=service.clock.now() + dt.timedelta(hours=1))
    assert "future" in caught.value.message
    assert service.inventory.get("intermediate", pki.serial["bob"]).status == "valid"


def test_unspecified_reason_has_no_reason_code(pki):
    service = _service(pki.home)
    revoke(service, _authority(service), ["alice"])
    entry = _crl(pki.home, "intermediate").get_revoked_certificate_by_serial_number(pki.serial["alice"])
    assert len(entry.extensions) == 0


def test_every_published_crl_lints_clean(pki):
    service = _service(pki.home)
    authority = _authority(service)
    for word, name in zip(["key-compromise", "certificate-hold", "privilege-withdrawn"], ["alice", "bob", "www"]):
        revoke(service, authority, [name], word)
    published = crls.publish_crls(service, authority)
    for name, crl in published.items():
        assert pkilint_crl_findings(crl.public_bytes(Encoding.DER)) == [], name


def _revoke_behind_the_back(tx, serial: int, when: dt.datetime, reason: str) -> None:
    """What a bulk import or another tool does: the row alone, no entry, no CRL."""
    assert tx.execute("UPDATE certificates SET status = 'revoked', revoked_at = ?, revocation_reason = ?"
                      " WHERE serial = ?", (when, reason, format(serial, "x"))) == 1


def test_cache_follows_the_certificates_table(pki):
    """Entries revoked behind the revoker's back, or a lost cache, are re-encoded."""
    service = _service(pki.home)
    authority = _authority(service)
    revoke(service, authority, ["alice"], "key-compromise")
    when = dt.datetime(2026, 5, 1, tzinfo=dt.timezone.utc)
    with service.inventory.transaction() as tx:
        _revoke_behind_the_back(tx, pki.serial["bob"], when, "superseded")
    crl = crls.publish_crls(service, authority)["intermediate"]
    assert {r.serial_number for r in crl} == {pki.serial["alice"], pki.serial["bob"]}
    bob = crl.get_revoked_certificate_by_serial_number(pki.serial["bob"])
    assert bob.revocation_date_utc == when
    assert bob.extensions.get_extension_for_class(x509.CRLReason).value.reason is x509.ReasonFlags.superseded
    with service.inventory.transaction() as tx:
        assert sorted(serial for (serial,) in tx.all("SELECT serial FROM crl_entries")) == sorted(
            format(pki.serial[n], "x") for n in ("alice", "bob"))
        # a CRL stored by an older version (no entry count) and a lost cache
        tx.execute("DELETE FROM crl_entries")
        tx.execute("UPDATE crl_state SET entry_count = NULL")
    again = crls.publish_crls(service, authority)["intermediate"]
    assert {r.serial_number for r in again} == {pki.serial["alice"], pki.serial["bob"]}
    with service.inventory.transaction() as tx:
        assert tx.scalar("SELECT count(*) FROM crl_entries") == 2


def test_a_refilled_cache_lists_the_entries_in_serial_order(pki):
    """Rows revoked behind the revoker's back, in whatever order SQLite returns them,
    come out of the refill sorted by their stored (hex) serial, as ORDER BY serial did."""
    service = _service(pki.home)
    authority = _authority(service)
    when = dt.datetime(2026, 5, 1, tzinfo=dt.timezone.utc)
    names = ("www", "carol", "alice", "bob")
    with service.inventory.transaction() as tx:
        for name in names:  # revoked in an order unrelated to the serials
            _revoke_behind_the_back(tx, pki.serial[name], when, "superseded")
    crl = crls.publish_crls(service, authority)["intermediate"]
    expected = sorted(format(pki.serial[n], "x") for n in names)
    assert [format(r.serial_number, "x") for r in crl] == expected


def test_fast_path_appends_to_the_stored_crl(pki):
    """With the stored CRL in step with the inventory, its entries are reused as bytes:
    even with the per-entry cache emptied, nothing already revoked is lost."""
    service = _service(pki.home)
    authority = _authority(service)
    revoke(service, authority, ["alice"], "key-compromise")
    with service.inventory.transaction() as tx:
        tx.execute("DELETE FROM crl_entries")
    crl = revoke(service, authority, ["bob"], "superseded").crls["intermediate"]
    assert {r.serial_number for r in crl} == {pki.serial["alice"], pki.serial["bob"]}
    alice = crl.get_revoked_certificate_by_serial_number(pki.serial["alice"])
    assert alice.extensions.get_extension_for_class(x509.CRLReason).value.reason is x509.ReasonFlags.key_compromise
    assert crl.is_signature_valid(service.ca_certificates()["intermediate"].public_key())


def test_bundle_and_current_crl_before_and_after_publishing(pki):
    service = _service(pki.home)
    with pytest.raises(NotFound) as caught:
        crls.crl_bundle_pem(service)
    assert "mtlskit crl" in caught.value.hint
    with pytest.raises(NotFound):
        crls.current_crl_der(service, "intermediate")
    assert crls.due_for_refresh(service) == ["intermediate", "root"]
    published = crls.publish_crls(service, _authority(service))
    assert crls.due_for_refresh(service) == []
    bundle = crls.crl_bundle_pem(service)
    assert bundle.count(b"-----BEGIN X509 CRL-----") == 2
    issuers = {x509.load_pem_x509_crl(b"-----BEGIN" + part).issuer
               for part in bundle.split(b"-----BEGIN")[1:]}
    assert issuers == {c.subject for c in service.ca_certificates().values()}
    assert x509.load_pem_x509_crl((pki.home / "crl" / "root.pem").read_bytes()) == published["root"]
    with pytest.raises(NotFound):
        crls.publish_crls(service, _authority(service), ["nope"])


def test_due_for_refresh_when_next_update_approaches(pki):
    service = _service(pki.home)
    crls.publish_crls(service, _authority(service))
    later = _service(pki.home, service.clock.now() + dt.timedelta(days=4))
    assert crls.due_for_refresh(later) == ["intermediate"]   # the root's CRL lives 365 days
    much_later = _service(pki.home, service.clock.now() + dt.timedelta(days=183))
    assert crls.due_for_refresh(much_later) == ["intermediate", "root"]


def test_single_tier_home(tmp_path):
    home = make_home(tmp_path, "--no-passphrase", "--no-intermediate")
    client = issue(home, "client", "alice", tmp_path / "out")
    service = _service(home)
    result = revoke(service, _authority(service), ["alice"])
    assert set(result.crls) == {"root"}
    assert serial_of(client) in {r.serial_number for r in result.crls["root"]}
    assert crls.crl_bundle_pem(service).count(b"BEGIN X509 CRL") == 1


def test_deployments_are_refreshed_when_the_deploy_module_exists(pki, monkeypatch):
    calls = []
    module = types.ModuleType("mtlskit.deploy.refresh")
    module.__spec__ = importlib.machinery.ModuleSpec("mtlskit.deploy.refresh", None)
    refreshed = [types.SimpleNamespace(written=True)]
    module.refresh_deployments = lambda service, bundle: calls.append(bundle) or refreshed
    monkeypatch.setitem(sys.modules, "mtlskit.deploy.refresh", module)
    service = _service(pki.home)
    assert revoke(service, _authority(service), ["carol"]).deployments is None  # none recorded yet
    now = service.clock.now()
    with service.inventory.transaction() as tx:
        tx.execute("INSERT INTO deployments (server, name, directory, revocation, options, created_at, updated_at)"
                   " VALUES ('nginx', 'www', ?, 'crl', '{}', ?, ?)", (str(pki.home / "deployed"), now, now))
    result = revoke(service, _authority(service), ["alice"])
    assert result.deployments is refreshed
    assert calls == [(pki.home / "crl" / "bundle.pem").read_bytes()]
    crls.publish_crls(service, _authority(service))
    assert len(calls) == 2


def test_unknown_stored_reason_still_publishes_without_reason_code(pki):
    service = _service(pki.home)
    when = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)
    with service.inventory.transaction() as tx:
        _revoke_behind_the_back(tx, pki.serial["bob"], when, "lost-in-the-post")
    crl = crls.publish_crls(service, _authority(service))["intermediate"]
    entry = crl.get_revoked_certificate_by_serial_number(pki.serial["bob"])
    assert entry.revocation_date_utc == when and len(entry.extensions) == 0


def test_concurrent_publishers_queue_and_never_reuse_a_crl_number(pki):
    """A cron `mtlskit crl`, `serve` and a `revoke` may publish at once (separate
    connections here, as separate processes would have)."""
    import threading

    errors, numbers = [], []

    def publish(kind):
        try:
            service = _service(pki.home)
            authority = _authority(service)
            if kind == "revoke":
                crl = revoke(service, authority, ["carol"]).crls["intermediate"]
            else:
                crl = crls.publish_crls(service, authority)["intermediate"]
            numbers.append(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
        except Exception as exc:  # collected, asserted below
            errors.append(exc)

    threads = [threading.Thread(target=publish, args=(k,)) for k in ("crl", "crl", "revoke", "crl")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(numbers) == [1, 2, 3, 4]
    final = _crl(pki.home, "intermediate")  # the files hold the newest CRL, whoever finished last
    assert final.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 4
    assert pki.serial["carol"] in {r.serial_number for r in final}
    bundle = crls.crl_bundle_pem(_service(pki.home))
    assert (pki.home / "crl" / "bundle.pem").read_bytes() == bundle


def test_a_serial_used_by_two_cas_is_ambiguous(pki):
    import dataclasses as dc

    service = _service(pki.home)
    alice = service.inventory.get("intermediate", pki.serial["alice"])
    twin = dc.replace(alice, issuer="root", fingerprint_sha256="0" * 64)
    service.inventory.add_certificates([twin], service.clock.now())
    with pytest.raises(Ambiguous) as caught:
        revoke(service, _authority(service), [format(pki.serial["alice"], "x")])
    assert "several CAs" in caught.value.message and "root" in caught.value.message
    # by name: every live certificate called alice, of either CA
    result = revoke(service, _authority(service), ["alice"])
    assert {(r.issuer, r.serial) for r in result.revoked} == {("intermediate", pki.serial["alice"]),
                                                              ("root", pki.serial["alice"])}
