"""Leaves assembled from DER parts (mtlskit.pki.leafder through LeafTemplate.sign_der) are
byte for byte the TBSCertificate cryptography's CertificateBuilder writes for the same
inputs, for every CA key, leaf key, profile and option; and their signatures verify."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mtlskit.ca.authority import Authority, CaRequest, create_authority, random_serial
from mtlskit.ca.signer import Signer
from mtlskit.errors import BadInput, PolicyViolation
from mtlskit.issue.issuer import (IssueRequest, LeafTemplate, SanRequest, certificate_pem, record_of,
                                  resolve_sans)
from mtlskit.issue.profiles import CLIENT, OCSP, PEER, SERVER
from mtlskit.pki import der, leafder, names
from mtlskit.pki.keys import KeyType, generate_private_key

NOW = dt.datetime(2026, 11, 22, 12, 0, 7, 654321, tzinfo=dt.timezone.utc)  # fractions are dropped
CA_KEYS = [KeyType.EC_P256, KeyType.EC_P384, KeyType.RSA_2048, KeyType.ED25519]
LEAF_KEYS = [KeyType.EC_P256, KeyType.EC_P384, KeyType.RSA_2048, KeyType.ED25519]
URL = "http://pki.example.com:8080"


@pytest.fixture(scope="module")
def authorities():
    """One hierarchy per CA key type; the EC P-256 one also without intermediate, and with
    name constraints on the RSA one."""
    made = {kind: create_authority(CaRequest(name=f"Leaf {kind.value}", key_type=kind), NOW) for kind in CA_KEYS}
    made["root-only"] = create_authority(CaRequest(name="Leaf root only", intermediate=False), NOW)
    made["constrained"] = create_authority(CaRequest(
        name="Leaf constrained", key_type=KeyType.RSA_2048, permit_dns=("example.com",),
        permit_ip=("10.0.0.0/8", "2001:db8::/32"), permit_email=("example.com",)), NOW)
    return made


@pytest.fixture(scope="module")
def leaf_keys():
    return {kind: generate_private_key(kind).public_key() for kind in LEAF_KEYS}


def _sans(profile, name="svc.example.com"):
    return resolve_sans(IssueRequest(profile, name, SanRequest(
        dns=("api.example.com",), ip=("10.1.2.3", "2001:db8::1"), email=("ops@example.com",),
        uri=("spiffe://example.com/svc",))))


def _assert_same_as_builder(template: LeafTemplate, subject: x509.Name, sans, public_key) -> x509.Certificate:
    serial = random_serial()
    fast = x509.load_der_x509_certificate(template.sign_der(subject, sans, public_key, serial))
    reference = template.build(subject, sans, public_key, serial)
    assert fast.tbs_certificate_bytes == reference.tbs_certificate_bytes
    assert fast.signature_algorithm_oid == reference.signature_algorithm_oid
    fast.verify_directly_issued_by(template.signer.certificate)
    return fast


@pytest.mark.parametrize("ca", [*CA_KEYS, "root-only", "constrained"], ids=str)
@pytest.mark.parametrize("leaf", LEAF_KEYS, ids=str)
@pytest.mark.parametrize("profile", [CLIENT, SERVER, PEER, OCSP], ids=lambda p: p.name)
@pytest.mark.parametrize("public_url", [None, URL], ids=["no-url", "url"])
def test_tbs_is_the_builders_for_every_key_and_profile(authorities, leaf_keys, ca, leaf, profile, public_url):
    template = LeafTemplate(authorities[ca], profile, public_url, NOW, 30)
    cert = _assert_same_as_builder(template, names.subject_name("svc.example.com", org_unit="Fleet"),
                                   _sans(profile), leaf_keys[leaf])
    assert cert.not_valid_before_utc == NOW.replace(microsecond=0) - dt.timedelta(minutes=5)
    assert (cert.not_valid_before_utc, cert.not_valid_after_utc) == template.validity


@pytest.mark.parametrize("profile,name,sans", [
    (CLIENT, "dev-000001", SanRequest()),                       # the default identity URI only
    (CLIENT, "Zoë 🚀 ⟨quoted, \"odd\"⟩", SanRequest()),          # UTF-8 and RFC 4514 specials
    (SERVER, "api.example.com", SanRequest()),                  # the name becomes the DNS SAN
    (SERVER, "*.svc.example.com", SanRequest(ip=("10.0.0.1",))),
    (CLIENT, "alice", SanRequest(email=("alice@example.com",))),
    (PEER, "node-1", SanRequest(uri=("spiffe://example.com/node-1",), ip=("::1",))),
])
def test_tbs_is_the_builders_for_every_kind_of_name(authorities, leaf_keys, profile, name, sans):
    template = LeafTemplate(authorities[KeyType.EC_P256], profile, None, NOW, None)
    request = IssueRequest(profile, name, sans)
    _assert_same_as_builder(template, names.subject_name(name), resolve_sans(request), leaf_keys[KeyType.EC_P256])


def test_a_leaf_without_sans_has_no_subject_alt_name(authorities, leaf_keys):
    template = LeafTemplate(authorities[KeyType.EC_P256], OCSP, None, NOW, 7)
    cert = _assert_same_as_builder(template, names.subject_name("responder"), [], leaf_keys[KeyType.EC_P256])
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)


def test_validity_from_2050_is_generalized_time():
    """RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050, like the builder."""
    late = dt.datetime(2049, 12, 1, 0, 0, 1, tzinfo=dt.timezone.utc)
    authority = create_authority(CaRequest(name="Late"), late)
    template = LeafTemplate(authority, CLIENT, None, late, 90)
    key = generate_private_key(KeyType.EC_P256).public_key()
    cert = _assert_same_as_builder(template, names.subject_name("late"), resolve_sans(IssueRequest(CLIENT, "late")), key)
    tbs = cert.tbs_certificate_bytes
    assert b"\x17\x0d491130235501Z" in tbs and b"\x18\x0f20500301000001Z" in tbs  # UTCTime, GeneralizedTime


def test_issuer_name_keeps_its_string_types_and_a_ca_without_ski_works():
    """A CA certificate not made by mtlskit: PrintableString country, no subjectKeyIdentifier."""
    key = generate_private_key(KeyType.EC_P256)
    subject = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Beispiel GmbH"),
                         x509.NameAttribute(NameOID.COMMON_NAME, "Beispiel CA")])
    ca_cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
               .public_key(key.public_key()).serial_number(random_serial())
               .not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(NOW + dt.timedelta(days=900))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
               .sign(key, hashes.SHA256()))
    signer = Signer("root", ca_cert, key)
    template = LeafTemplate(Authority(signer, signer), SERVER, URL, NOW, 90)
    leaf = generate_private_key(KeyType.RSA_2048).public_key()
    cert = _assert_same_as_builder(template, names.subject_name("www.example.com"),
                                   resolve_sans(IssueRequest(SERVER, "www.example.com")), leaf)
    assert cert.issuer.public_bytes() == ca_cert.subject.public_bytes()


class _Sha224Signer(Signer):
    """A signer whose hash the DER path has no identifier for: the builder signs."""

    @property
    def hash_algorithm(self):
        return hashes.SHA224()


def test_unknown_signing_algorithm_falls_back_to_the_builder(authorities, leaf_keys):
    issuing = authorities[KeyType.EC_P256].issuing
    signer = _Sha224Signer(issuing.name, issuing.certificate, issuing._key)
    authority = dataclasses.replace(authorities[KeyType.EC_P256], issuing=signer)
    template = LeafTemplate(authority, CLIENT, None, NOW, 30)
    encoded = template.sign_der(names.subject_name("old"), resolve_sans(IssueRequest(CLIENT, "old")),
                            leaf_keys[KeyType.EC_P256], random_serial())
    cert = x509.load_der_x509_certificate(encoded)
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA224)
    cert.verify_directly_issued_by(issuing.certificate)


def test_sign_der_still_applies_the_policy(authorities):
    template = LeafTemplate(authorities["constrained"], SERVER, None, NOW, 30)
    key = generate_private_key(KeyType.EC_P256).public_key()
    with pytest.raises(PolicyViolation, match="outside the CA's name constraints"):
        template.sign_der(names.subject_name("evil.com"), [x509.DNSName("evil.com")], key, random_serial())
    with pytest.raises(PolicyViolation, match="curve secp256k1 refused"):
        template.sign_der(names.subject_name("a.example.com"), [x509.DNSName("a.example.com")],
                          ec.generate_private_key(ec.SECP256K1()).public_key(), random_serial())
    with pytest.raises(PolicyViolation, match="needs at least one subjectAltName"):
        template.sign_der(names.subject_name("a.example.com"), [], key, random_serial())


@pytest.mark.parametrize("kind", LEAF_KEYS, ids=str)
def test_subject_key_identifier_is_the_sha1_of_the_key_bits(leaf_keys, kind):
    public_key = leaf_keys[kind]
    spki = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    expected = x509.SubjectKeyIdentifier.from_public_key(public_key)
    assert leafder.subject_key_identifier(spki) == _extension_der(expected)


def _extension_der(value) -> bytes:
    return der.extension(value.oid.dotted_string, value.public_bytes())


@pytest.mark.parametrize("data", [b"", b"\x04\x03abc", b"\x30\x03\x30\x01\x00", b"\x30\x05\x30\x00\x04\x01\x00"])
def test_subject_public_key_refuses_what_is_not_an_spki(data):
    with pytest.raises(BadInput):
        leafder.subject_public_key(data)


def test_pem_and_record_are_cryptographys(authorities, leaf_keys):
    template = LeafTemplate(authorities[KeyType.EC_P256], CLIENT, None, NOW, None)
    encoded = template.sign_der(names.subject_name("pem"), resolve_sans(IssueRequest(CLIENT, "pem")),
                            leaf_keys[KeyType.RSA_2048], random_serial())
    cert = x509.load_der_x509_certificate(encoded)
    assert certificate_pem(encoded) == cert.public_bytes(serialization.Encoding.PEM)
    record = record_of(cert, "intermediate", "pem", "client")
    assert record.pem.encode() == cert.public_bytes(serialization.Encoding.PEM)
    assert record.sans == ("URI:https://mtlskit.invalid/client/pem",) and record.key_type == "rsa-2048"
