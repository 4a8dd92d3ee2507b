"""Pure PKI pieces: names, key policy, profiles and name constraints."""

import datetime as dt
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa

from mtlskit.ca.authority import CaRequest, create_authority, random_serial
from mtlskit.errors import BadInput, PolicyViolation
from mtlskit.issue import policy
from mtlskit.issue.issuer import IssueRequest, LeafTemplate, SanRequest, resolve_sans, validate_name
from mtlskit.issue.profiles import CLIENT, PEER, SERVER, get_profile
from mtlskit.pki import names
from mtlskit.pki.keys import KeyType, check_key_strength, generate_private_key

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def authority():
    return create_authority(CaRequest(name="Unit", permit_dns=("example.com",),
                                      permit_ip=("10.0.0.0/8",)), NOW)


def test_serials_are_positive_random_and_at_most_20_octets():
    serials = {random_serial() for _ in range(1000)}
    assert len(serials) == 1000
    assert all(0 < s < 2 ** 159 and s.bit_length() <= 159 for s in serials)


@pytest.mark.parametrize("text,expected", [("api.example.com", True), ("*.svc.local", True),
                                           ("alice", False), ("bad_host.example", False)])
def test_looks_like_hostname(text, expected):
    assert names.looks_like_hostname(text) is expected


@pytest.mark.parametrize("maker,text", [(names.dns_name, "no spaces.com"), (names.ip_address, "10.0.0.300"),
                                        (names.email_address, "not-an-email"), (names.uri, "nocolon")])
def test_bad_san_values_are_refused(maker, text):
    with pytest.raises(BadInput, match="not a valid"):
        maker(text)


def test_server_name_becomes_dns_san_and_client_gets_identity_uri():
    server_sans = resolve_sans(IssueRequest(SERVER, "api.example.com", SanRequest(ip=("10.0.0.1",))))
    assert x509.DNSName("api.example.com") in server_sans
    client_sans = resolve_sans(IssueRequest(CLIENT, "alice"))
    assert client_sans == [x509.UniformResourceIdentifier("https://mtlskit.invalid/client/alice")]
    with_email = resolve_sans(IssueRequest(CLIENT, "alice", SanRequest(email=("a@example.com",))))
    assert with_email == [x509.RFC822Name("a@example.com")]


@pytest.mark.parametrize("key,message", [
    (rsa.generate_private_key(65537, 1024).public_key(), "RSA key of 1024 bits refused"),
    (ec.generate_private_key(ec.SECP521R1()).public_key(), "curve secp521r1 refused"),
    (ec.generate_private_key(ec.SECP256K1()).public_key(), "curve secp256k1 refused"),
    (dsa.generate_private_key(2048).public_key(), "DSAPublicKey refused"),
])
def test_weak_or_unknown_keys_are_refused(key, message):
    with pytest.raises(PolicyViolation, match=message):
        check_key_strength(key)


@pytest.mark.parametrize("key_type", [k for k in KeyType if k is not KeyType.RSA_4096])  # 4096: slow, same code
def test_every_offered_key_type_passes_the_policy(key_type):
    check_key_strength(generate_private_key(key_type).public_key())


def test_lifetime_beyond_profile_maximum_is_refused():
    with pytest.raises(PolicyViolation, match="allows at most 397 days"):
        policy.check_lifetime(SERVER, 398)
    policy.check_lifetime(SERVER, 397)


def test_name_constraints(authority):
    cas = [authority.root.certificate, authority.issuing.certificate]
    policy.check_name_constraints(cas, [x509.DNSName("api.example.com"), x509.DNSName("example.com")])
    policy.check_name_constraints(cas, [x509.IPAddress(ipaddress.ip_address("10.1.2.3"))])
    with pytest.raises(PolicyViolation, match="DNS:evil.com is outside"):
        policy.check_name_constraints(cas, [x509.DNSName("evil.com")])
    with pytest.raises(PolicyViolation, match="DNS:notexample.com is outside"):
        policy.check_name_constraints(cas, [x509.DNSName("notexample.com")])
    with pytest.raises(PolicyViolation, match="IP:192.168.1.1 is outside"):
        policy.check_name_constraints(cas, [x509.IPAddress(ipaddress.ip_address("192.168.1.1"))])


def test_leaf_extensions_follow_the_profile(authority):
    template = LeafTemplate(authority, PEER, "http://pki.example.com", NOW, None)
    key = generate_private_key(KeyType.RSA_2048)
    cert = template.issue(IssueRequest(PEER, "svc.example.com"), key.public_key())
    ext = cert.extensions
    assert ext.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert ext.get_extension_for_class(x509.BasicConstraints).critical
    usage = ext.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.key_encipherment and not usage.key_cert_sign
    eku = ext.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {x509.ExtendedKeyUsageOID.SERVER_AUTH, x509.ExtendedKeyUsageOID.CLIENT_AUTH}
    assert ext.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier == \
        authority.issuing.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    crl_dp = ext.get_extension_for_class(x509.CRLDistributionPoints).value
    assert crl_dp[0].full_name[0].value == "http://pki.example.com/crl/intermediate.crl"
    aia = ext.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert {a.access_location.value for a in aia} == {"http://pki.example.com/ocsp",
                                                      "http://pki.example.com/ca/intermediate.crt"}


def test_ec_server_has_no_key_encipherment(authority):
    template = LeafTemplate(authority, SERVER, None, NOW, 30)
    cert = template.issue(IssueRequest(SERVER, "api.example.com"),
                          generate_private_key(KeyType.EC_P256).public_key())
    assert not cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_encipherment
    assert cert.not_valid_after_utc - NOW == dt.timedelta(days=30)
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.CRLDistributionPoints)


def test_leaf_cannot_outlive_its_issuer():
    short = create_authority(CaRequest(name="Short", root_days=100, intermediate_days=50), NOW)
    with pytest.raises(PolicyViolation, match="outlive its issuing CA"):
        LeafTemplate(short, SERVER, None, NOW, 90)


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", ".hidden"])
def test_names_that_cannot_be_directories_are_refused(bad):
    with pytest.raises(BadInput):
        validate_name(bad)


def test_unknown_profile_is_refused():
    with pytest.raises(BadInput, match="unknown profile 'ca'"):
        get_profile("ca")
