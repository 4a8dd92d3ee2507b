"""Enrollment tokens and serve's TLS certificate, in-process: the token workflow with a
fixed clock, the CLI's refusals, the TLS certificate's renewal, trust-bootstrap parsing."""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mtlskit.api.tls import TlsKeeper, TlsNames
from mtlskit.clock import FixedClock
from mtlskit.config import load_settings
from mtlskit.errors import BadInput, PolicyViolation
from mtlskit.issue.issuer import SanRequest
from mtlskit.lifecycle.remote import CaUrl, parse_fingerprint
from mtlskit.lifecycle.tokens import NamesNotAllowed, TokenGrant, TokenRefused, create_token, enroll
from mtlskit.service import Service

T0 = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.timezone.utc)


def service_at(home, at=T0):
    return Service.open(load_settings(home), FixedClock(at))


def csr(names=(), common_name=None) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, common_name)] if common_name else [])
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


@pytest.fixture
def ca(fresh_home):
    service = service_at(fresh_home)
    return fresh_home, service, service.authority(lambda: None)


def test_the_token_is_bound_to_its_names_and_subject(ca):
    home, service, authority = ca
    grant = TokenGrant("api1", "server", SanRequest(dns=("api1.example",)), hours=36,
                       subject=__import__("mtlskit.issue.subject", fromlist=["SubjectOptions"]).SubjectOptions(org="Acme"))
    token, expires_at = create_token(service, grant, dt.timedelta(minutes=15))
    assert expires_at == T0 + dt.timedelta(minutes=15)
    with pytest.raises(NamesNotAllowed, match="DNS:other.example"):
        enroll(service, authority, token, csr(("api1.example", "other.example")))
    certificate, record = enroll(service, authority, token, csr(("api1.example",), "api1"))
    assert record.name == "api1" and record.profile == "server"
    assert certificate.subject.rfc4514_string() == "CN=api1,O=Acme"
    assert certificate.not_valid_after_utc - T0 == dt.timedelta(hours=36)
    events = service.inventory.events()
    assert any(e["action"] == "enroll" for e in events) and token not in json.dumps(events, default=str)


def test_a_token_expires_by_the_clock(ca):
    home, service, authority = ca
    token, _ = create_token(service, TokenGrant("late", "client"), dt.timedelta(minutes=15))
    later = service_at(home, T0 + dt.timedelta(minutes=15))
    with pytest.raises(TokenRefused, match="expired at"):
        enroll(later, authority, token, csr())
    assert enroll(service_at(home, T0 + dt.timedelta(minutes=14)), authority, token, csr())[1].name == "late"


def _enroll_in_child(home, token, results) -> None:
    service = service_at(home)
    try:
        enroll(service, service.authority(lambda: None), token, csr())
        results.put("ok")
    except TokenRefused:
        results.put("refused")


def test_of_twenty_processes_using_a_token_exactly_one_succeeds(ca):
    home, service, _authority = ca
    token, _ = create_token(service, TokenGrant("crowd", "client"), dt.timedelta(minutes=15))
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    children = [context.Process(target=_enroll_in_child, args=(home, token, results)) for _ in range(20)]
    for child in children:
        child.start()
    for child in children:
        child.join(60)
    outcomes = sorted(results.get(timeout=5) for _ in children)
    assert outcomes.count("ok") == 1 and outcomes.count("refused") == 19
    assert len(service.inventory.by_name("crowd")) == 1


@pytest.mark.parametrize("args, code, message", [
    (["token", "create", "x", "--profile", "root-ca"], 2, "unknown profile"),
    (["token", "create", "x", "--profile", "client", "--ttl", "0m"], 2, "--ttl"),
    (["token", "create", "x", "--profile", "client", "--ttl", "31d"], 2, "--ttl"),
    (["token", "create", "bad name!", "--profile", "client"], 2, "NAME"),
    (["token", "create", "x", "--profile", "server", "--dns", "a..b"], 2, ""),
    (["token", "create", "x", "--profile", "client", "--days", "1", "--hours", "2"], 2, "--hours"),
    (["token", "revoke", "nobody"], 3, "no pending enrollment token"),
    (["enroll", "--ca-url", "https://127.0.0.1:1", "--fingerprint", "ab" * 32, "--out", "o"], 2, "token"),
    (["enroll", "--ca-url", "http://127.0.0.1:1", "--fingerprint", "ab" * 32, "--out", "o", "--token", "t"], 2,
     "https://"),
    (["enroll", "--ca-url", "https://127.0.0.1:1", "--fingerprint", "abc", "--out", "o", "--token", "t"], 2,
     "64 hex digits"),
])
def test_cli_refusals(cli, fresh_home, tmp_path, monkeypatch, args, code, message):
    monkeypatch.chdir(tmp_path)
    result = cli("--home", fresh_home, *args)
    assert result.code == code, result.err
    assert result.err.startswith("error: ") and message in result.err
    assert not (tmp_path / "o").exists()
    tokens = cli("--home", fresh_home, "token", "list", "--json")
    assert tokens.code == 0 and json.loads(tokens.out) == []


def test_token_list_and_revoke(cli, fresh_home):
    created = cli("--home", fresh_home, "token", "create", "host1", "--profile", "peer", "--dns", "host1.example")
    token = created.out.splitlines()[-1]
    listed = json.loads(cli("--home", fresh_home, "token", "list", "--json").out)
    assert listed[0]["state"] == "pending" and listed[0]["sans"] == ["DNS:host1.example"]
    assert token not in json.dumps(listed)
    assert cli("--home", fresh_home, "token", "revoke", "host1").code == 0
    assert json.loads(cli("--home", fresh_home, "token", "list", "--json").out)[0]["state"] == "expired"


def test_fingerprints_and_urls():
    digest = "AB" * 32
    assert parse_fingerprint(":".join(digest[i:i + 2] for i in range(0, 64, 2))) == digest.lower()
    for bad in ("ab" * 31, "zz" * 32, "ab" * 33, ""):
        with pytest.raises(BadInput):
            parse_fingerprint(bad)
    assert CaUrl.parse("https://ca.example:8443/").port == 8443
    for bad in ("http://ca.example", "https://ca.example/api", "https://u@ca.example", "https://:8443",
                "https://ca.example:99999", "https://ca.example?token=x"):
        with pytest.raises(BadInput):
            CaUrl.parse(bad)


def test_serve_renews_its_tls_certificate_at_two_thirds_and_when_its_names_change(ca, tmp_path):
    home, service, authority = ca
    clock = FixedClock(T0)
    names = TlsNames.for_host(["ca.example"], ["10.0.0.1"])
    keeper = TlsKeeper(tmp_path / "tls", authority, service.inventory, clock, names)
    first, made = keeper.current()
    assert made and {"ca.example", "localhost"} <= {n.value for n in first.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value if isinstance(n, x509.DNSName)}
    assert (tmp_path / "tls" / "server.key.pem").stat().st_mode & 0o777 == 0o600
    clock.advance(dt.timedelta(days=19))
    assert keeper.current() == (first, False)  # reused while fresh
    clock.advance(dt.timedelta(days=2))  # past 2/3 of 30 days
    second, made = keeper.current()
    assert made and second.serial_number != first.serial_number
    other = TlsKeeper(tmp_path / "tls", authority, service.inventory, clock, TlsNames.for_host(["new.example"]))
    third, made = other.current()
    assert made and third.serial_number != second.serial_number
    recorded = [r for r in service.inventory.query(clock.now()) if r.profile == "serve-tls"]
    assert len(recorded) == 3


def _served_certificate(server_context, root_pem: bytes) -> x509.Certificate:
    """One in-memory TLS handshake against ``server_context``: the certificate it serves."""
    import ssl

    client_context = ssl.create_default_context(cadata=root_pem.decode())
    client_context.check_hostname = False
    client_context.verify_mode = ssl.CERT_NONE  # the clock of the test is not the system's
    bios = [ssl.MemoryBIO() for _ in range(4)]
    client = client_context.wrap_bio(bios[0], bios[1], server_hostname="localhost")
    server = server_context.wrap_bio(bios[2], bios[3], server_side=True)
    for _ in range(10):
        for side in (client, server):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pass
        bios[2].write(bios[1].read())
        bios[0].write(bios[3].read())
    return x509.load_der_x509_certificate(client.getpeercert(binary_form=True))


def test_the_running_context_serves_the_renewed_certificate(ca, tmp_path):
    from mtlskit.api.wiring import _TlsUpkeep

    home, _service, authority = ca
    clock = FixedClock(T0)
    service = Service.open(load_settings(home), clock)
    upkeep = _TlsUpkeep(service, authority, TlsNames.for_host())
    root_pem = authority.root.certificate.public_bytes(serialization.Encoding.PEM)
    first = _served_certificate(upkeep.context, root_pem)
    upkeep.tick()
    assert _served_certificate(upkeep.context, root_pem) == first
    clock.advance(dt.timedelta(days=21))
    upkeep.tick()
    renewed = _served_certificate(upkeep.context, root_pem)
    assert renewed.serial_number != first.serial_number
    assert renewed.not_valid_before_utc > first.not_valid_before_utc
