"""Subject fields (C, ST, L, O, OU) and lifetimes in days or hours: the rules `init`,
`issue`, `sign` and `token create` share (issue/subject.py, issue/lifetime.py)."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from mtlskit.config import load_settings
from mtlskit.errors import BadInput, PolicyViolation, UsageError
from mtlskit.issue.lifetime import (describe, hours_left, is_managed, is_short_lived, requested_lifetime,
                                    time_left)
from mtlskit.issue.profiles import CLIENT, SERVER, Profile
from mtlskit.issue.subject import SubjectOptions, requested_fields
from mtlskit.pki import names

EVERY = dict(country="de", state="Bayern", locality="München", org="Acme GmbH", org_unit="Équipe Ω")


def test_every_field_in_the_order_of_the_guides():
    subject = names.subject_name("alice", SubjectOptions.parse(**EVERY).attributes())
    assert [a.oid for a in subject] == [NameOID.COUNTRY_NAME, NameOID.STATE_OR_PROVINCE_NAME,
                                        NameOID.LOCALITY_NAME, NameOID.ORGANIZATION_NAME,
                                        NameOID.ORGANIZATIONAL_UNIT_NAME, NameOID.COMMON_NAME]
    assert [len(rdn) for rdn in subject.rdns] == [1] * 6
    assert subject.rfc4514_string() == "CN=alice,OU=Équipe Ω,O=Acme GmbH,L=München,ST=Bayern,C=DE"


def test_country_is_upper_cased_and_absent_fields_are_left_out():
    options = SubjectOptions.parse(country="fr", org="Example")
    assert options.as_dict() == {"country": "FR", "org": "Example"}
    assert [a.oid for a in options.attributes()] == [NameOID.COUNTRY_NAME, NameOID.ORGANIZATION_NAME]
    assert SubjectOptions().empty and not options.empty


@pytest.mark.parametrize("field, value, message", [
    ("country", "DEU", "two-letter ISO 3166"),
    ("country", "D", "two-letter ISO 3166"),
    ("country", "D1", "two-letter ISO 3166"),
    ("country", "Ü1", "two-letter ISO 3166"),
    ("country", "de\n", "two-letter ISO 3166"),
    ("org", "x" * 65, "at most 64"),
    ("org_unit", "x" * 65, "at most 64"),
    ("state", "x" * 129, "at most 128"),
    ("locality", "x" * 129, "at most 128"),
    ("org", "Acme\nX-Client-Verify: SUCCESS", "control or format character"),
    ("org_unit", "ops\r", "control or format character"),
    ("locality", "a\x00b", "control or format character"),
    ("org", "evil\u202egnp.exe", "control or format character"),   # right-to-left override
    ("org", "zero\u200bwidth", "control or format character"),
    ("state", "a\u2028b", "control or format character"),          # line separator
    ("org", " Acme", "starts or ends with a space"),
    ("org_unit", "ops ", "starts or ends with a space"),
])
def test_refused_values_name_their_option(field, value, message):
    with pytest.raises(BadInput, match=message) as caught:
        SubjectOptions.parse(**{field: value})
    assert names.SUBJECT_OPTION[field] in caught.value.message
    assert "\n" not in caught.value.message


def test_upper_bounds_are_accepted():
    options = SubjectOptions.parse(org="o" * 64, org_unit="u" * 64, state="s" * 128, locality="l" * 128)
    assert len(names.subject_name("x", options.attributes()).public_bytes()) > 384


def test_dn_special_characters_are_kept_as_values():
    """`,` `+` `=` `"` are ordinary characters of a value: the DN printers escape them."""
    subject = names.subject_name("x", SubjectOptions.parse(org='Doe, John + "Co" =1').attributes())
    assert subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == 'Doe, John + "Co" =1'


def test_options_over_defaults_and_empty_clears():
    defaults = SubjectOptions.parse(country="DE", org="Acme")
    assert SubjectOptions.parse(org="Other").over(defaults) == SubjectOptions(country="DE", org="Other")
    assert SubjectOptions.parse(org="").over(defaults) == SubjectOptions(country="DE")
    assert SubjectOptions().over(defaults) == defaults


def _name(*pairs) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in pairs])


def test_a_csr_subject_keeps_c_st_l_o_ou_and_reports_the_rest():
    kept, dropped = requested_fields(_name(
        (NameOID.COUNTRY_NAME, "DE"), (NameOID.ORGANIZATION_NAME, "Acme"),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, "Ops"), (NameOID.ORGANIZATIONAL_UNIT_NAME, "Second"),
        (NameOID.EMAIL_ADDRESS, "a@example.com"), (NameOID.COMMON_NAME, "alice"),
        (NameOID.SERIAL_NUMBER, "42")))
    assert kept == SubjectOptions(country="DE", org="Acme", org_unit="Ops")
    assert dropped == ["'OU=Second'", "'1.2.840.113549.1.9.1=a@example.com'", "'2.5.4.5=42'"]


def test_a_csr_subject_with_a_bad_value_is_refused():
    with pytest.raises(BadInput, match="the CSR's C 'Germany' is not a country"):
        with pytest.warns(UserWarning):
            germany = x509.NameAttribute(NameOID.COUNTRY_NAME, "Germany", _validate=False)
        requested_fields(x509.Name([germany]))
    with pytest.raises(BadInput, match="the CSR's O .* control"):
        requested_fields(_name((NameOID.ORGANIZATION_NAME, "a\nb")))


def test_subject_table_of_the_settings(tmp_path):
    (tmp_path / "mtlskit.toml").write_text('[subject]\ncountry = "DE"\norg = "Acme"\n')
    assert load_settings(tmp_path, environ={}).subject == (("country", "DE"), ("org", "Acme"))
    (tmp_path / "mtlskit.toml").write_text('[subject]\ncn = "x"\n')
    with pytest.raises(BadInput, match=r"unknown \[subject\] key\(s\): cn"):
        load_settings(tmp_path, environ={})
    (tmp_path / "mtlskit.toml").write_text('[subject]\ncountry = 49\n')
    with pytest.raises(BadInput, match=r"\[subject\] country must be a string"):
        load_settings(tmp_path, environ={})
    (tmp_path / "mtlskit.toml").write_text('subject = "Acme"\n')
    with pytest.raises(BadInput, match=r"\[subject\] must be a table"):
        load_settings(tmp_path, environ={})


def test_a_bad_default_names_the_setting():
    with pytest.raises(BadInput, match=r"\[subject\] country 'Deutschland'"):
        SubjectOptions.from_mapping({"country": "Deutschland"}, source="[subject]")


# -- lifetimes ---------------------------------------------------------------------------

def test_lifetime_in_days_hours_or_the_profile_default():
    assert requested_lifetime(CLIENT) == dt.timedelta(days=365)
    assert requested_lifetime(CLIENT, days=30) == dt.timedelta(days=30)
    assert requested_lifetime(CLIENT, hours=12) == dt.timedelta(hours=12)
    assert requested_lifetime(SERVER, hours=397 * 24) == dt.timedelta(days=397)


@pytest.mark.parametrize("days, hours, error, message", [
    (1, 1, UsageError, "--days and --hours cannot be used together"),
    (None, 0, BadInput, "at least 1 hour"),
    (None, -5, BadInput, "at least 1 hour"),
    (0, None, BadInput, "at least 1 day"),
    (None, 397 * 24 + 1, PolicyViolation, "allows at most 397 days"),
    (398, None, PolicyViolation, "allows at most 397 days"),
])
def test_lifetime_refusals(days, hours, error, message):
    with pytest.raises(error, match=message):
        requested_lifetime(SERVER, days=days, hours=hours)


def test_a_profile_may_count_in_hours():
    short = Profile("short", CLIENT.extended_key_usages, default_days=1, max_days=1, requires_san=True,
                    default_hours=8, max_hours=24)
    assert requested_lifetime(short) == dt.timedelta(hours=8)
    assert requested_lifetime(short, hours=24) == dt.timedelta(hours=24)
    with pytest.raises(PolicyViolation, match="allows at most 1 day"):
        requested_lifetime(short, hours=25)
    with pytest.raises(PolicyViolation, match="hint|at most"):
        requested_lifetime(short, days=2)


def test_describe_and_hours_left():
    assert [describe(dt.timedelta(days=d)) for d in (1, 2)] == ["1 day", "2 days"]
    assert [describe(dt.timedelta(hours=h)) for h in (1, 36)] == ["1 hour", "36 hours"]
    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    end = start + dt.timedelta(hours=12, minutes=5)
    assert is_short_lived(start, end) and not is_short_lived(start, start + dt.timedelta(days=3))
    assert hours_left(end, start) == 12 and hours_left(start, end) == -13
    assert time_left(start, end, start + dt.timedelta(hours=1)) == "11h"
    assert time_left(start, start + dt.timedelta(days=90), start) == "90"


def test_managed_profiles():
    assert is_managed("ocsp") and not any(is_managed(p) for p in ("server", "client", "peer", "root-ca"))


def test_countries_are_the_iso_3166_list_pkilint_judges_with():
    iso3166 = pytest.importorskip("iso3166")
    from mtlskit.pki.countries import ALPHA2

    assert ALPHA2 == set(iso3166.countries_by_alpha2)


@pytest.mark.parametrize("value, hint", [("UK", "UK is written GB in ISO 3166"), ("zz", None), ("XX", None),
                                         ("QM", None)])
def test_two_letters_that_name_no_country_are_refused(value, hint):
    with pytest.raises(BadInput, match="is not a country") as caught:
        SubjectOptions.parse(country=value)
    assert caught.value.hint == hint


def test_every_assigned_country_is_accepted_in_either_case():
    from mtlskit.pki.countries import ALPHA2

    assert {SubjectOptions.parse(country=code.lower()).country for code in ALPHA2} == set(ALPHA2)


@pytest.mark.parametrize("days, hours", [(10**15, None), (None, 10**18), (2**63, None)])
def test_a_huge_lifetime_is_refused_not_overflowed(days, hours):
    with pytest.raises(PolicyViolation, match="allows at most 397 days"):
        requested_lifetime(SERVER, days=days, hours=hours)
