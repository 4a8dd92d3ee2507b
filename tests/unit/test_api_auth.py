"""api/auth.py: roles, their order, and client certificates mapped to roles by [roles]."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mtlskit.api.auth import Principal, allows, principal_for_certificate
from mtlskit.config import ROLES, load_settings
from mtlskit.errors import BadInput
from tests.support_deploy import CLIENT, SERVER, make_ca, make_leaf


@pytest.fixture(scope="module")
def ca():
    return make_ca("Auth Test CA")


def _settings(tmp_path, toml: str):
    (tmp_path / "mtlskit.toml").write_text(toml)
    return load_settings(tmp_path, environ={})


@pytest.mark.parametrize("held, needed, allowed", [
    ("read", "read", True), ("read", "issue", False), ("read", "revoke", False), ("read", "admin", False),
    ("issue", "read", True), ("issue", "issue", True), ("issue", "revoke", False),
    ("revoke", "issue", True), ("revoke", "revoke", True), ("revoke", "admin", False),
    ("admin", "read", True), ("admin", "revoke", True), ("admin", "admin", True),
])
def test_each_role_includes_those_before_it(held, needed, allowed):
    assert allows(Principal("p", held, "token"), needed) is allowed


def test_nobody_and_unknown_roles_are_allowed_nothing():
    assert not allows(None, "read")
    assert not allows(Principal("p", "root", "token"), "read")
    assert not allows(Principal("p", "ADMIN", "token"), "read")
    with pytest.raises(ValueError):
        allows(Principal("p", "admin", "token"), "superuser")  # a typo in a route is a bug, not a refusal


def test_audit_by_names_the_way_in_and_the_caller():
    assert Principal("ci", "issue", "token").audit_by == "token:ci"
    assert Principal("alice", "admin", "certificate").audit_by == "certificate:alice"


def test_roles_table_maps_names_and_units_highest_role_wins(tmp_path, ca):
    settings = _settings(tmp_path, '[roles]\nadmin = ["alice"]\nread = ["ou:Ops", "alice"]\nrevoke = ["ou:Sec"]\n')
    assert settings.roles == (("read", ("ou:Ops", "alice")), ("revoke", ("ou:Sec",)), ("admin", ("alice",)))
    alice = make_leaf(ca, "alice", CLIENT, ou="Ops").cert
    assert principal_for_certificate(alice, settings) == Principal("alice", "admin", "certificate")
    bob = make_leaf(ca, "bob", CLIENT, ou="Ops").cert
    assert principal_for_certificate(bob, settings) == Principal("bob", "read", "certificate")
    carol = make_leaf(ca, "carol", CLIENT, ou="Sec").cert
    assert principal_for_certificate(carol, settings).role == "revoke"


def test_unnamed_certificates_map_to_nobody(tmp_path, ca):
    settings = _settings(tmp_path, '[roles]\nadmin = ["alice"]\n')
    assert principal_for_certificate(make_leaf(ca, "mallory", CLIENT).cert, settings) is None
    assert principal_for_certificate(make_leaf(ca, "Alice", CLIENT).cert, settings) is None  # exact, case and all
    assert principal_for_certificate(make_leaf(ca, "alice", CLIENT, ou="alice").cert,
                                     _settings(tmp_path, '[roles]\nadmin = ["ou:Ops"]\n')) is None
    assert principal_for_certificate(make_leaf(ca, "alice", CLIENT).cert, load_settings(tmp_path / "none", environ={})) is None


def test_a_named_certificate_without_client_auth_maps_to_nobody(tmp_path, ca):
    settings = _settings(tmp_path, '[roles]\nadmin = ["alice"]\n')
    assert principal_for_certificate(make_leaf(ca, "alice", SERVER).cert, settings) is None
    both = make_leaf(ca, "alice", [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]).cert
    assert principal_for_certificate(both, settings).role == "admin"


def test_a_subject_with_two_common_names_names_nobody(tmp_path, ca):
    settings = _settings(tmp_path, '[roles]\nadmin = ["alice"]\n')
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "alice"),
                         x509.NameAttribute(NameOID.COMMON_NAME, "mallory")])
    assert principal_for_certificate(make_leaf(ca, "x", CLIENT, subject=subject).cert, settings) is None


@pytest.mark.parametrize("toml, says", [
    ('roles = "admin"\n', "must be a table"),
    ('[roles]\nroot = ["alice"]\n', "unknown role(s) in [roles]: root"),
    ('[roles]\nadmin = "alice"\n', "must be a list"),
    ('[roles]\nadmin = [1]\n', "must be a list"),
    ('[roles]\nadmin = [""]\n', "must be a list"),
    ('[roles]\nadmin = [" alice"]\n', "must be a list"),
    ('[roles]\nadmin = ["ou:"]\n', "must be a list"),
    ('[roles]\nadmin = ["ali\\nce"]\n', "must be a list"),
])
def test_bad_roles_tables_are_refused(tmp_path, toml, says):
    with pytest.raises(BadInput) as caught:
        _settings(tmp_path, toml)
    assert says in caught.value.message


def test_roles_are_ordered_lowest_first():
    assert ROLES == ("read", "issue", "revoke", "admin")
