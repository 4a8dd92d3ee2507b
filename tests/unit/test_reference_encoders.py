"""Every hand-written DER encoder against its cryptography-builder reference, byte for
byte, on generated input (hypothesis): leaf certificates (LeafTemplate.sign_der vs
.build), CRL entries (encode_entry, encode_stored_entries), CRLs (build_crl) and OCSP
responses (PreparedResponse vs build_response_reference).

ECDSA keys sign through a subclass of cryptography's key class that asks for RFC 6979
(deterministic) signatures — the way a PKCS#11 key plugs into the builders — so whole
certificates, CRLs and responses compare, signatures included. The fast paths are
called by name: these tests compare both even when MTLSKIT_REFERENCE_ENCODERS=1.
"""

from __future__ import annotations

import datetime as dt
import os
from unittest import mock

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp as cocsp
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings, strategies as st

from mtlskit.ca.authority import CaRequest, create_authority
from mtlskit.ca.signer import Signer
from mtlskit.issue.issuer import LeafTemplate, client_identity_uri
from mtlskit.issue.profiles import CLIENT, SERVER
from mtlskit.pki import der, names
from mtlskit.pki.keys import KeyType
from mtlskit.pki.reference import ENVIRONMENT_VARIABLE, reference_encoders
from mtlskit.publish import crl as crlmod
from mtlskit.publish import crls, ocsp
from mtlskit.publish.responder import build_responder_certificate
from mtlskit.revoke.reasons import RevocationReason

UTC = dt.timezone.utc
CA_TIME = dt.datetime(1955, 1, 1, tzinfo=UTC)    # CAs valid from 1955 for 150 years:
CA_DAYS = 150 * 365                                 # leaves on both sides of 2050 fit in them
PROPERTY = settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


class DeterministicEcKey(ec.EllipticCurvePrivateKey):
    """An EC key whose ECDSA signatures are RFC 6979's, for builder and DER path alike."""

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        self._key = key

    curve = property(lambda self: self._key.curve)
    key_size = property(lambda self: self._key.key_size)

    def public_key(self):
        return self._key.public_key()

    def sign(self, data, signature_algorithm):
        return self._key.sign(data, ec.ECDSA(signature_algorithm.algorithm, deterministic_signing=True))

    def private_bytes(self, *args):
        return self._key.private_bytes(*args)

    def private_numbers(self):
        return self._key.private_numbers()

    def exchange(self, *args):
        return self._key.exchange(*args)

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self


def _deterministic(key):
    return DeterministicEcKey(key) if isinstance(key, ec.EllipticCurvePrivateKey) else key


KEY_TYPES = [KeyType.EC_P256, KeyType.EC_P384, KeyType.RSA_2048, KeyType.ED25519]


@pytest.fixture(scope="module")
def authorities():
    """Per key type, an issuing CA (with an intermediate) whose key signs deterministically."""
    found = {}
    for kind in KEY_TYPES:
        authority = create_authority(CaRequest(f"Ref {kind.value}", key_type=kind, root_days=CA_DAYS,
                                               intermediate_days=CA_DAYS), CA_TIME)
        issuing = authority.issuing
        found[kind] = type(authority)(authority.root, Signer(issuing.name, issuing.certificate,
                                                             _deterministic(issuing._key)))
    return found


@pytest.fixture(scope="module")
def leaf_keys():
    return {"ec-p256": ec.generate_private_key(ec.SECP256R1()).public_key(),
            "ec-p384": ec.generate_private_key(ec.SECP384R1()).public_key(),
            "rsa-2048": rsa.generate_private_key(65537, 2048).public_key(),
            "ed25519": ed25519.Ed25519PrivateKey.generate().public_key()}


def _fast_template(*args) -> LeafTemplate:
    with mock.patch.dict(os.environ, {ENVIRONMENT_VARIABLE: "0"}):
        template = LeafTemplate(*args)
    assert template._layout is not None  # the DER path, whatever the suite runs on
    return template


# --- generated input -------------------------------------------------------------------

def _serials(octets: int) -> st.SearchStrategy[int]:
    """Positive serials whose DER INTEGER content is exactly ``octets`` long."""
    low = 1 if octets == 1 else 1 << (8 * (octets - 1) - 1)
    return st.integers(low, (1 << (8 * octets - 1)) - 1)


SERIALS = st.integers(1, 20).flatmap(_serials)
# at most 16 characters: 64 bytes of UTF-8 even when every one takes four (the length a CN may have)
ODD_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=16)
EDGES = [dt.datetime(1950, 1, 1, tzinfo=UTC), dt.datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC),
         dt.datetime(2050, 1, 1, tzinfo=UTC), dt.datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC),
         dt.datetime(2000, 1, 1, tzinfo=UTC), dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)]
TIMES = st.one_of(
    st.sampled_from(EDGES),
    st.builds(lambda edge, seconds: edge + dt.timedelta(seconds=seconds), st.sampled_from(EDGES[1:3]),
              st.integers(-86400, 86400)),
    st.datetimes(dt.datetime(1950, 1, 1), dt.datetime(2200, 1, 1), timezones=st.just(UTC)))
UPDATE_TIMES = TIMES.filter(lambda when: when.year < 9000)  # nextUpdate is later still
REASONS = st.sampled_from([None, *crlmod.REASON_CODES])


# --- leaf certificates --------------------------------------------------------------------

@st.composite
def _subjects(draw) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, draw(ODD_TEXT))]
    if draw(st.booleans()):
        attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, draw(ODD_TEXT)))
    return x509.Name(attributes)


@PROPERTY
@given(kind=st.sampled_from(KEY_TYPES), leaf=st.sampled_from(["ec-p256", "ec-p384", "rsa-2048", "ed25519"]),
       serial=SERIALS, subject=_subjects(), name=ODD_TEXT,
       now=st.one_of(st.sampled_from(EDGES[1:3]),
                     st.datetimes(dt.datetime(1956, 1, 1), dt.datetime(2100, 1, 1), timezones=st.just(UTC))),
       days=st.integers(1, 397), server=st.booleans(), public_url=st.sampled_from([None, "https://ca.example"]))
def test_leaf_der_is_the_builders(authorities, leaf_keys, kind, leaf, serial, subject, name, now, days,
                                  server, public_url):
    profile = SERVER if server else CLIENT
    sans = [x509.DNSName("svc.example")] if server else [names.uri(client_identity_uri(name))]
    template = _fast_template(authorities[kind], profile, public_url, now, days)
    fast = template.sign_der(subject, sans, leaf_keys[leaf], serial)
    assert fast == template.build(subject, sans, leaf_keys[leaf], serial).public_bytes(Encoding.DER)


# --- CRL entries and CRLs --------------------------------------------------------------------

@PROPERTY
@given(serial=SERIALS, when=TIMES, reason=REASONS)
def test_crl_entry_is_the_builders(serial, when, reason):
    assert crlmod.encode_entry_fast(serial, when, reason) == crlmod.encode_entry_reference(serial, when, reason)


def _stored_time(when: dt.datetime, style: int) -> str | dt.datetime:
    """The revocation time as the inventory may hold it: SQLite's text (with and without
    fractions, with a zero offset) or a datetime."""
    naive = when.replace(tzinfo=None)
    return [naive.isoformat(" "), naive.isoformat(" ", "seconds"), when.isoformat(" "), when][style]


@PROPERTY
@given(rows=st.lists(st.tuples(SERIALS, TIMES, st.sampled_from([None, "unspecified", "bogus-word",
                                                                *(r.value for r in RevocationReason)]),
                               st.integers(0, 3), st.booleans()), max_size=12))
def test_stored_entries_are_the_builders(rows):
    stored = [(format(serial, "x") if not pad else "0" + format(serial, "x"), _stored_time(when, style), reason)
              for serial, when, reason, style, pad in rows]
    assert crls.encode_stored_entries_fast(stored) == crls.encode_stored_entries_reference(stored)


@PROPERTY
@given(kind=st.sampled_from(KEY_TYPES), number=st.integers(0, (1 << 159) - 1), this_update=UPDATE_TIMES,
       lifetime=st.integers(1, 400 * 86400),
       entries=st.lists(st.tuples(SERIALS, TIMES, REASONS), max_size=8), joined=st.booleans())
def test_crl_is_the_builders(authorities, kind, number, this_update, lifetime, entries, joined):
    signer = authorities[kind].issuing
    encoded = [crlmod.encode_entry_fast(*entry) for entry in entries]
    given_entries = b"".join(encoded) if joined else encoded
    next_update = this_update + dt.timedelta(seconds=lifetime)
    fast = crlmod.build_crl_fast(signer, number, this_update, next_update, given_entries)
    assert fast == crlmod.build_crl_reference(signer, number, this_update, next_update, given_entries)


# --- OCSP responses -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def responders(authorities):
    """A deterministic responder of every key type, certified by the P-256 CA."""
    ca = authorities[KeyType.EC_P256].issuing
    now = dt.datetime(2026, 1, 1, tzinfo=UTC)
    keys = [ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP384R1()),
            rsa.generate_private_key(65537, 2048), ed25519.Ed25519PrivateKey.generate()]
    return [ocsp.ResponderKey(build_responder_certificate(ca, key.public_key(), now), _deterministic(key))
            for key in keys]


_HASHES = {"sha1": hashes.SHA1(), "sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}


@st.composite
def _answers(draw) -> ocsp.SingleAnswer:
    hash_name = draw(st.sampled_from(sorted(_HASHES)))
    size = _HASHES[hash_name].digest_size
    request = (cocsp.OCSPRequestBuilder()
               .add_certificate_by_hash(draw(st.binary(min_size=size, max_size=size)),
                                        draw(st.binary(min_size=size, max_size=size)),
                                        draw(SERIALS), _HASHES[hash_name])
               .build().public_bytes(Encoding.DER))
    cert_id = ocsp.parse_request(request).cert_ids[0]
    status = draw(st.sampled_from(list(ocsp.CertStatus)))
    if status is not ocsp.CertStatus.REVOKED:
        return ocsp.SingleAnswer(cert_id, status)
    return ocsp.SingleAnswer(cert_id, status, draw(st.one_of(st.none(), TIMES)), draw(REASONS))


NONCES = st.one_of(st.none(), st.binary(min_size=1, max_size=32).map(lambda n: der.encode(der.OCTET_STRING, n)))


@PROPERTY
@given(index=st.integers(0, 3), answers=st.lists(_answers(), min_size=1, max_size=4), this_update=UPDATE_TIMES,
       validity=st.integers(1, 7 * 86400), nonce=NONCES)
def test_ocsp_response_is_the_builders(responders, index, answers, this_update, validity, nonce):
    responder = responders[index]
    next_update = this_update + dt.timedelta(seconds=validity)
    reference = ocsp.build_response_reference(answers, responder, this_update, next_update, nonce)
    # cryptography's builder stamps producedAt with the system clock: the fast path is given it
    produced_at = cocsp.load_der_ocsp_response(reference).produced_at_utc
    body = ocsp.response_data_body(answers, responder, this_update.replace(microsecond=0),
                                   next_update.replace(microsecond=0), produced_at)
    assert ocsp.PreparedResponse(body, responder).sign(nonce) == reference


# --- the switch --------------------------------------------------------------------------------

def test_the_switch_sends_every_encoder_to_its_reference(authorities, leaf_keys, monkeypatch):
    """With MTLSKIT_REFERENCE_ENCODERS=1 no fast path runs (each is made to fail here)."""
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, "1")
    assert reference_encoders()

    def broken(*args, **kwargs):
        raise AssertionError("a fast path ran")

    for name in ("encode_entry_fast", "build_crl_fast"):
        monkeypatch.setattr(crlmod, name, broken)
    monkeypatch.setattr(crls, "encode_stored_entries_fast", broken)
    for name in ("_assemble", "response_data_body", "_single_response"):  # the SingleResponses by hand
        monkeypatch.setattr(ocsp, name, broken)
    signer = authorities[KeyType.EC_P256].issuing
    now = dt.datetime(2026, 1, 1, tzinfo=UTC)
    entry = crlmod.encode_entry(7, now, x509.ReasonFlags.superseded)
    assert crls.encode_stored_entries([("7", "2026-01-01 00:00:00", "superseded")]) == [entry]
    x509.load_der_x509_crl(crlmod.build_crl(signer, 1, now, now + dt.timedelta(days=1), [entry]))
    template = LeafTemplate(authorities[KeyType.EC_P256], CLIENT, None, now, 30)
    assert template._layout is None
    template.sign_der(names.subject_name("x"), [names.uri(client_identity_uri("x"))], leaf_keys["ec-p256"], 5)
    responder_key = ec.generate_private_key(ec.SECP256R1())
    responder = ocsp.ResponderKey(build_responder_certificate(signer, responder_key.public_key(), now),
                                  responder_key)
    answer = ocsp.SingleAnswer(ocsp.parse_request(cocsp.OCSPRequestBuilder().add_certificate_by_hash(
        b"a" * 20, b"b" * 20, 9, hashes.SHA1()).build().public_bytes(Encoding.DER)).cert_ids[0],
        ocsp.CertStatus.GOOD)
    for count in (1, 2):
        ocsp.build_response([answer] * count, responder, now, now + dt.timedelta(hours=1), b"\x04\x01n")
        ocsp.prepare_response([answer] * count, responder, now, now + dt.timedelta(hours=1)).sign(b"\x04\x01n")


@pytest.mark.parametrize("value", ["", "0", "true", "yes"])
def test_only_1_switches(monkeypatch, value):
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, value)
    assert not reference_encoders()
