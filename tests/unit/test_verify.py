"""The offline verifier: each finding with its cause, each success beside its failure."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from cryptography import x509

from mtlskit.verify.checks import Purpose
from mtlskit.verify.findings import Level
from mtlskit.verify.verifier import VerifyRequest, verify
from tests.support_verify import NOW, ONE_DAY, make_ca, make_crl, make_leaf


@pytest.fixture(scope="module")
def pki():
    root = make_ca("Unit Root")
    inter = make_ca("Unit Intermediate", root)
    return root, inter


def request(pki, leaf, **kw) -> VerifyRequest:
    root, inter = pki
    base = dict(leaf=leaf.cert, anchors=[root.cert], chain=[inter.cert], at=NOW)
    return VerifyRequest(**(base | kw))


def codes(report, level=None):
    return [f.code for f in report.findings if level is None or f.level is level]


def test_valid_client_certificate_is_ok(pki):
    report = verify(request(pki, make_leaf("alice", pki[1])))
    assert report.ok and codes(report, Level.ERROR) == []
    assert "ok" in codes(report)
    assert [c.subject for c in report.path] == [report.path[0].subject, pki[1].cert.subject, pki[0].cert.subject]


def test_expired_leaf_is_explained_without_blaming_the_chain(pki):
    leaf = make_leaf("old", pki[1], not_before=NOW - 400 * ONE_DAY, not_after=NOW - ONE_DAY)
    report = verify(request(pki, leaf))
    assert codes(report, Level.ERROR) == ["cert-expired"]
    assert "mtlskit issue" in report.findings[0].hint


def test_expired_leaf_older_than_its_ca_certificate_does_not_blame_the_chain(pki):
    """Issue 11: the leaf was issued before the CA certificate was (re)issued, so no time
    exists at which the whole path is valid; the expiry is still the one cause."""
    leaf = make_leaf("old", pki[1], not_before=NOW - 800 * ONE_DAY, not_after=NOW - 370 * ONE_DAY)
    report = verify(request(pki, leaf))
    assert codes(report, Level.ERROR) == ["cert-expired"], report.findings


def test_expired_leaf_of_a_foreign_ca_is_still_untrusted(pki):
    stranger = make_ca("Stranger Intermediate", make_ca("Stranger Root"))
    leaf = make_leaf("old", stranger, not_before=NOW - 800 * ONE_DAY, not_after=NOW - 370 * ONE_DAY)
    report = verify(request(pki, leaf, chain=[stranger.cert]))
    assert codes(report, Level.ERROR) == ["cert-expired", "chain-untrusted"]


def test_not_yet_valid_leaf(pki):
    leaf = make_leaf("early", pki[1], not_before=NOW + ONE_DAY)
    assert codes(verify(request(pki, leaf)), Level.ERROR) == ["cert-not-yet-valid"]


def test_server_certificate_used_as_client_is_wrong_purpose(pki):
    leaf = make_leaf("svc", pki[1], eku=("server",), dns=("svc.example.com",))
    report = verify(request(pki, leaf))
    assert codes(report, Level.ERROR) == ["wrong-purpose"]
    assert "clientAuth" in report.findings[0].hint
    assert verify(request(pki, leaf, purpose=Purpose.SERVER, host="svc.example.com")).ok


def test_missing_eku_is_only_a_warning(pki):
    report = verify(request(pki, make_leaf("any", pki[1], eku=())))
    assert report.ok and "eku-missing" in codes(report, Level.WARNING)


def test_server_name_mismatch(pki):
    leaf = make_leaf("svc", pki[1], eku=("server",), dns=("svc.example.com",))
    report = verify(request(pki, leaf, purpose=Purpose.SERVER, host="other.example.com"))
    assert codes(report, Level.ERROR) == ["name-mismatch"]


def test_missing_intermediate_is_untrusted_with_a_hint(pki):
    report = verify(request(pki, make_leaf("alice", pki[1]), chain=[]))
    assert codes(report, Level.ERROR) == ["chain-untrusted"]
    assert "--chain" in report.findings[0].hint


def test_foreign_ca_is_untrusted(pki):
    other = make_ca("Other Root")
    report = verify(request(pki, make_leaf("eve", other), chain=[]))
    assert not report.ok and codes(report, Level.ERROR) == ["chain-untrusted"]


def test_no_anchor_is_an_error(pki):
    report = verify(request(pki, make_leaf("alice", pki[1]), anchors=[]))
    assert codes(report, Level.ERROR) == ["chain-untrusted"] and "--ca" in report.findings[0].hint


# --- CRL ---

def test_revoked_by_crl_names_the_reason(pki):
    root, inter = pki
    leaf = make_leaf("mallory", inter)
    crls = [make_crl(inter, {leaf.cert.serial_number: x509.ReasonFlags.key_compromise}), make_crl(root)]
    report = verify(request(pki, leaf, crls=crls))
    assert codes(report, Level.ERROR) == ["revoked"]
    assert "(reason: key-compromise)" in report.findings[0].message


def test_not_on_crl_passes_and_every_ca_is_checked(pki):
    root, inter = pki
    report = verify(request(pki, make_leaf("alice", inter), crls=[make_crl(inter), make_crl(root)]))
    assert report.ok and "crl-missing" not in codes(report)


def test_revoked_intermediate_is_found_on_the_root_crl(pki):
    root, inter = pki
    crls = [make_crl(inter), make_crl(root, {inter.cert.serial_number: x509.ReasonFlags.ca_compromise})]
    report = verify(request(pki, make_leaf("alice", inter), crls=crls))
    assert codes(report, Level.ERROR) == ["revoked"] and "Intermediate" in report.findings[0].message


def test_ca_without_crl_is_a_warning(pki):
    report = verify(request(pki, make_leaf("alice", pki[1]), crls=[make_crl(pki[1])]))
    assert report.ok and codes(report, Level.WARNING) == ["crl-missing"]


def test_remove_from_crl_entry_does_not_revoke(pki):
    root, inter = pki
    leaf = make_leaf("back", inter)
    crls = [make_crl(inter, {leaf.cert.serial_number: x509.ReasonFlags.remove_from_crl}), make_crl(root)]
    assert verify(request(pki, leaf, crls=crls)).ok


@pytest.mark.parametrize("crl_kwargs, code", [
    (dict(next_=NOW - ONE_DAY, last=NOW - 8 * ONE_DAY), "crl-expired"),
    (dict(last=NOW + ONE_DAY, next_=NOW + 8 * ONE_DAY), "crl-not-yet-valid"),
    (dict(number=False), "crl-invalid"),
])
def test_unusable_crl_is_an_error(pki, crl_kwargs, code):
    root, inter = pki
    report = verify(request(pki, make_leaf("alice", inter), crls=[make_crl(inter, **crl_kwargs), make_crl(root)]))
    assert codes(report, Level.ERROR) == [code]


@pytest.mark.parametrize("left, flagged", [
    (dt.timedelta(hours=23), True), (dt.timedelta(days=1), True), (dt.timedelta(minutes=1), True),
    (dt.timedelta(days=1, seconds=1), False), (dt.timedelta(days=6), False)])
def test_a_crl_expiring_within_a_day_is_a_warning_with_a_way_to_keep_it_fresh(pki, left, flagged):
    root, inter = pki
    crls = [make_crl(inter, next_=NOW + left), make_crl(root)]
    report = verify(request(pki, make_leaf("alice", inter), crls=crls))
    assert report.ok  # still usable: a warning, not an error
    expiring = [f for f in report.findings if f.code == "crl-expiring"]
    assert bool(expiring) is flagged
    if flagged:
        assert expiring[0].level is Level.WARNING and "Unit Intermediate" in expiring[0].message
        assert "mtlskit serve" in expiring[0].hint and "mtlskit crl" in expiring[0].hint


def test_only_the_newest_crl_of_a_ca_is_judged_for_freshness(pki):
    root, inter = pki
    crls = [make_crl(inter, next_=NOW + dt.timedelta(hours=2), last=NOW - 2 * ONE_DAY),
            make_crl(inter, next_=NOW + 6 * ONE_DAY), make_crl(root)]
    assert "crl-expiring" not in codes(verify(request(pki, make_leaf("alice", inter), crls=crls)))


def test_a_stale_crl_beside_a_fresh_one_is_ignored(pki):
    root, inter = pki
    leaf = make_leaf("mallory", inter)
    stale = make_crl(inter, last=NOW - 20 * ONE_DAY, next_=NOW - 13 * ONE_DAY)
    fresh = make_crl(inter, {leaf.cert.serial_number: None})
    report = verify(request(pki, leaf, crls=[stale, fresh, make_crl(root)]))
    assert codes(report, Level.ERROR) == ["revoked"]


def test_crl_signed_by_another_key_is_refused(pki):
    root, inter = pki
    impostor = make_ca("Unit Intermediate")  # same name, other key
    crl = make_crl(inter, signer=impostor.key)
    report = verify(request(pki, make_leaf("alice", inter), crls=[crl, make_crl(root)]))
    assert codes(report, Level.ERROR) == ["crl-bad-signature"]


# --- chain file ---

def test_chain_file_missing_the_trusted_intermediate_is_flagged(pki):
    root, inter = pki
    # trusting the intermediate directly hides the gap a root-only server would see
    report = verify(request(pki, make_leaf("alice", inter), anchors=[inter.cert], chain=[], chain_given=True))
    assert report.ok and codes(report, Level.WARNING) == ["chain-incomplete"]
    assert "fullchain.pem" in next(f for f in report.findings if f.code == "chain-incomplete").hint


def test_complete_chain_file_has_no_chain_warning(pki):
    report = verify(request(pki, make_leaf("alice", pki[1]), chain_given=True))
    assert not [c for c in codes(report) if c.startswith("chain-")]


def test_chain_file_with_a_stranger_is_noted(pki):
    stranger = make_ca("Stranger")
    report = verify(request(pki, make_leaf("alice", pki[1]), chain=[pki[1].cert, stranger.cert], chain_given=True))
    assert report.ok and "chain-extra" in codes(report, Level.INFO)


def test_ca_without_key_usage_extension_is_accepted(pki):
    root = make_ca("Bare Root", key_usage=False)
    leaf = make_leaf("alice", root)
    assert verify(VerifyRequest(leaf=leaf.cert, anchors=[root.cert], at=NOW)).ok


def test_findings_are_serialisable(pki):
    report = verify(request(pki, make_leaf("alice", pki[1])))
    data = report.to_dict()
    assert data["ok"] is True and all(set(f) == {"code", "level", "message", "hint"} for f in data["findings"])
    assert dataclasses.is_dataclass(report.findings[0])
