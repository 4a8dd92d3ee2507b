"""Issue 11, point 6: what a CSR or the options may name, the attacker's view.

A client CSR whose CN lies outside the CA's --permit-dns (and has no DNS SAN) was signed,
and OpenSSL then refused the chain; `sign` accepted a `*` SAN and 5,000 SANs. Every
refusal: one `error:` line, its exit code, nothing written, nothing in the inventory.
"""

from __future__ import annotations

import ipaddress
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ObjectIdentifier

from tests.judges import openssl

KEY = ec.generate_private_key(ec.SECP256R1())


def _csr(cn: str | None, sans: list[x509.GeneralName] = ()) -> bytes:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else [])
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), False)
    return builder.sign(KEY, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def constrained_home(tmp_path_factory):
    from mtlskit.cli.app import main
    home = tmp_path_factory.mktemp("nc") / "home"
    assert main(["--home", str(home), "init", "--name", "NC CA", "--no-passphrase",
                 "--permit-dns", "example.com", "--permit-email", "example.com"]) == 0
    return home


def _inventory_size(cli, home) -> int:
    return len(json.loads(cli("--home", home, "list", "--json").out))


def _refused(cli, home, tmp_path, args, code: int, message: str) -> None:
    before = _inventory_size(cli, home)
    result = cli("--home", home, *args)
    assert result.code == code, (result.code, result.err)
    assert result.err.startswith("error: ") and message in result.err, result.err
    assert "Traceback" not in result.err and len(result.err.splitlines()) <= 2
    written = [p for p in tmp_path.iterdir() if not p.name.endswith(".csr") and p.name != "home"]
    assert not written, "a refusal wrote files"
    assert _inventory_size(cli, home) == before


def _sign(cli, home, tmp_path, csr: bytes, profile: str, code: int, message: str) -> None:
    path = tmp_path / "req.csr"
    path.write_bytes(csr)
    _refused(cli, home, tmp_path, ["sign", path, "--profile", profile, "--out", tmp_path / "c.pem"], code, message)


# -- name constraints on the subject CN ---------------------------------------------------

@pytest.mark.parametrize("profile", ["client", "peer", "server"])
def test_sign_refuses_a_cn_outside_the_constraints_without_dns_san(constrained_home, tmp_path, cli, profile):
    _sign(cli, constrained_home, tmp_path, _csr("evil.attacker.org"), profile, 4,
          "outside the CA's name constraints")


def test_sign_refuses_a_cn_outside_the_constraints_beside_an_email_san(constrained_home, tmp_path, cli):
    _sign(cli, constrained_home, tmp_path, _csr("evil.attacker.org", [x509.RFC822Name("a@example.com")]),
          "client", 4, "the subject CN 'evil.attacker.org' is a DNS name outside")


def test_sign_refuses_a_cn_outside_even_with_a_dns_san_inside(constrained_home, tmp_path, cli):
    # OpenSSL would not read the CN here; the CA refuses it anyway (CN-reading verifiers).
    _sign(cli, constrained_home, tmp_path, _csr("evil.attacker.org", [x509.DNSName("ok.example.com")]),
          "client", 4, "the subject CN 'evil.attacker.org'")


def test_sign_refuses_a_chosen_name_outside_the_constraints(constrained_home, tmp_path, cli):
    path = tmp_path / "req.csr"
    path.write_bytes(_csr("alice.example.com"))
    _refused(cli, constrained_home, tmp_path, ["sign", path, "--profile", "client", "--name", "x.evil.org",
                                               "--out", tmp_path / "c.pem"], 4, "'x.evil.org' is a DNS name outside")


@pytest.mark.parametrize("name", ["evil.attacker.org", "notexample.com", "a_b.evil.org"])
def test_issue_refuses_a_client_name_outside_the_constraints(constrained_home, tmp_path, cli, name):
    _refused(cli, constrained_home, tmp_path, ["issue", "client", name, "--out", tmp_path / "c"], 4,
             "is a DNS name outside the CA's name constraints")


def test_a_batch_with_one_name_outside_writes_nothing(constrained_home, tmp_path, cli):
    _refused(cli, constrained_home, tmp_path, ["issue", "client", "a.example.com", "b.evil.org",
                                               "--out", tmp_path / "batch"], 4, "'b.evil.org'")


def test_names_inside_or_not_dns_are_signed_and_openssl_agrees(constrained_home, tmp_path, cli):
    for name in ("alice.example.com", "alice", "bob@example.com"):
        path = tmp_path / f"{name}.csr"
        path.write_bytes(_csr(name))
        result = cli("--home", constrained_home, "sign", path, "--profile", "client", "--out", tmp_path / f"{name}.pem")
        assert result.code == 0, result.err
        judged = openssl("verify", "-purpose", "sslclient", "-CAfile", constrained_home / "ca/root.pem",
                         "-untrusted", constrained_home / "ca/intermediate.pem", tmp_path / f"{name}.pem")
        assert judged.returncode == 0, judged.stdout + judged.stderr
        ours = cli("--home", constrained_home, "verify", tmp_path / f"{name}.pem", "--ca",
                   constrained_home / "ca/root.pem", "--chain", constrained_home / "ca/intermediate.pem")
        assert ours.code == 0, ours.out + ours.err


# -- SAN counts ---------------------------------------------------------------------------

def test_sign_refuses_5000_sans(ca_home, tmp_path, cli):
    sans = [x509.DNSName(f"h{i}.example.com") for i in range(5000)]
    _sign(cli, ca_home, tmp_path, _csr("h0.example.com", sans), "server", 2, "5000 subjectAltNames refused")


def test_sign_takes_100_sans_and_refuses_101(fresh_home, tmp_path, cli):
    sans = [x509.DNSName(f"h{i}.example.com") for i in range(101)]
    _sign(cli, fresh_home, tmp_path, _csr("h0.example.com", sans), "server", 2, "at most 100")
    path = tmp_path / "ok.csr"
    path.write_bytes(_csr("h0.example.com", sans[:100]))
    assert cli("--home", fresh_home, "sign", path, "--profile", "server", "--out", tmp_path / "ok.pem").code == 0
    assert len(x509.load_pem_x509_certificate((tmp_path / "ok.pem").read_bytes()).extensions
               .get_extension_for_class(x509.SubjectAlternativeName).value) == 100


def test_issue_refuses_101_sans(ca_home, tmp_path, cli):
    dns = [arg for i in range(101) for arg in ("--dns", f"h{i}.example.com")]
    _refused(cli, ca_home, tmp_path, ["issue", "server", "h0.example.com", *dns, "--out", tmp_path / "s"], 2,
             "at most 100")


# -- wildcards ----------------------------------------------------------------------------

@pytest.mark.parametrize("san,code,message", [
    (x509.DNSName("*"), 2, "is not a valid DNS name"),
    (x509.DNSName("a*.example.com"), 2, "is not a valid DNS name"),
    (x509.DNSName("*.*.example.com"), 2, "is not a valid DNS name"),
    (x509.DNSName("x.*.example.com"), 2, "is not a valid DNS name"),
    (x509.DNSName("*.com"), 4, "covers a whole top-level domain"),
    (x509.RFC822Name("*@example.com"), 2, "no wildcard"),
    (x509.UniformResourceIdentifier("spiffe://*/svc"), 2, "no wildcard"),
    (x509.RFC822Name("a" * 250 + "@example.com"), 2, "at most 254"),
    (x509.DirectoryName(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])), 2, "form this CA does not sign"),
    (x509.OtherName(ObjectIdentifier("1.3.6.1.4.1.311.20.2.3"), b"\x0c\x01x"), 2, "form this CA does not sign"),
    (x509.RegisteredID(ObjectIdentifier("1.2.3.4")), 2, "form this CA does not sign"),
    (x509.IPAddress(ipaddress.ip_network("10.0.0.0/8")), 2, "is a network"),
])
def test_sign_refuses_malformed_or_hostile_sans(ca_home, tmp_path, cli, san, code, message):
    _sign(cli, ca_home, tmp_path, _csr("host.example.com", [x509.DNSName("host.example.com"), san]),
          "server", code, message)


@pytest.mark.parametrize("profile", ["client", "peer"])
def test_only_servers_hold_wildcards(ca_home, tmp_path, cli, profile):
    _sign(cli, ca_home, tmp_path, _csr("svc", [x509.DNSName("*.svc.example.com")]), profile, 4,
          f"refused in a {profile} certificate")
    _refused(cli, ca_home, tmp_path, ["issue", profile, "svc", "--dns", "*.svc.example.com",
                                      "--out", tmp_path / "w"], 4, "only server certificates may hold wildcards")


@pytest.mark.parametrize("dns,code,message", [("*", 2, "not a valid DNS name"), ("*.com", 4, "top-level"),
                                              ("a*.example.com", 2, "not a valid DNS name")])
def test_issue_dns_follows_the_same_wildcard_rules(ca_home, tmp_path, cli, dns, code, message):
    _refused(cli, ca_home, tmp_path, ["issue", "server", "web", "--dns", dns, "--out", tmp_path / "w"], code, message)


def test_a_server_wildcard_is_signed_and_issued(fresh_home, tmp_path, cli):
    path = tmp_path / "w.csr"
    path.write_bytes(_csr("web", [x509.DNSName("*.Svc.Example.com")]))
    assert cli("--home", fresh_home, "sign", path, "--profile", "server", "--out", tmp_path / "w.pem").code == 0
    cert = x509.load_pem_x509_certificate((tmp_path / "w.pem").read_bytes())
    assert cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName) == ["*.svc.example.com"]
    assert cli("--home", fresh_home, "issue", "server", "web2", "--dns", "*.svc.example.com",
               "--out", tmp_path / "w2").code == 0


# -- CSRs whose extensions do not decode --------------------------------------------------

def _tlv(tag: int, body: bytes) -> bytes:
    size = len(body)
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    length = bytes([size]) if size < 128 else bytes([0x80 | len(octets)]) + octets
    return bytes([tag]) + length + body


def _crafted_csr(san_body: bytes, copies: int = 1) -> bytes:
    """A validly signed CSR whose SAN extension holds what cryptography's builder refuses."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "host.example.com")]).public_bytes()
    spki = KEY.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    extension = _tlv(0x30, _tlv(0x06, bytes.fromhex("551d11")) + _tlv(0x04, _tlv(0x30, san_body)))
    request = _tlv(0x30, _tlv(0x06, bytes.fromhex("2a864886f70d01090e")) + _tlv(0x31, _tlv(0x30, extension * copies)))
    info = _tlv(0x30, _tlv(0x02, b"\x00") + name + spki + _tlv(0xA0, request))
    signature = KEY.sign(info, ec.ECDSA(hashes.SHA256()))
    return _tlv(0x30, info + _tlv(0x30, _tlv(0x06, bytes.fromhex("2a8648ce3d040302"))) + _tlv(0x03, b"\x00" + signature))


@pytest.mark.parametrize("san_body,copies", [
    (_tlv(0x87, b"\x01\x02\x03\x04\x05"), 1),       # an IP address of 5 bytes
    (_tlv(0x82, b"host.example.com"), 2),           # two SAN extensions
    (_tlv(0xA3, b"\x30\x00"), 1),                   # an x400Address
])
def test_sign_refuses_undecodable_san_extensions(ca_home, tmp_path, cli, san_body, copies):
    _sign(cli, ca_home, tmp_path, _crafted_csr(san_body, copies), "server", 2, "cannot be decoded")
