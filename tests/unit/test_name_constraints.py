"""The name-constraint matcher shared by the issuer and verify (pki/constraints.py),
case by case as OpenSSL's v3_ncons.c decides them."""

from __future__ import annotations

import ipaddress

import pytest
from cryptography import x509

from mtlskit.pki.constraints import cn_dns_id, dns_within, permits


@pytest.mark.parametrize("cn,expected", [
    ("alice.example.com", "alice.example.com"), ("a_b.example.com", "a_b.example.com"),
    ("ALICE.Example.COM", "ALICE.Example.COM"), ("x.y\0", "x.y"),
    ("alice", None), ("Alice Smith.org", None), ("a..b", None), ("-a.b", None), ("a.b-", None),
    ("a.-b", None), ("a-.b", None), (".a.b", None), ("a.b.", None), ("bob@example.com", None),
    ("*.example.com", None), ("ex\u00e4mple.com", None),
])
def test_a_cn_reads_as_a_dns_name_as_openssl_reads_it(cn, expected):
    assert cn_dns_id(cn) == expected


@pytest.mark.parametrize("host,base,inside", [
    ("example.com", "example.com", True), ("a.example.com", "example.com", True),
    ("A.EXAMPLE.com", "example.COM", True), ("notexample.com", "example.com", False),
    ("example.com", ".example.com", False), ("a.example.com", ".example.com", True),
    ("com", "example.com", False), ("anything.org", "", True),
    ("*.example.com", "example.com", True), ("*.example.com", ".example.com", True),
])
def test_dns_subtrees(host, base, inside):
    assert dns_within(host, base) is inside


def _permitted(*bases: x509.GeneralName) -> x509.NameConstraints:
    return x509.NameConstraints(permitted_subtrees=list(bases), excluded_subtrees=None)


@pytest.mark.parametrize("mailbox,base,inside", [
    ("alice@example.com", "example.com", True), ("alice@EXAMPLE.com", "example.com", True),
    ("alice@mail.example.com", "example.com", False), ("alice@mail.example.com", ".example.com", True),
    ("alice@example.com", ".example.com", False), ("alice@example.com", "alice@example.com", True),
    ("Alice@example.com", "alice@example.com", False), ("bob@example.com", "alice@example.com", False),
])
def test_email_subtrees(mailbox, base, inside):
    assert permits(_permitted(x509.RFC822Name(base)), x509.RFC822Name(mailbox)) is inside


@pytest.mark.parametrize("uri,base,inside", [
    ("https://svc.example.com/x", "svc.example.com", True), ("https://svc.example.com:8443/x", "svc.example.com", True),
    ("https://u@svc.example.com/", "svc.example.com", True), ("spiffe://a.example.com/w", ".example.com", True),
    ("https://evil.org/svc.example.com", "svc.example.com", False), ("urn:uuid:1234", "example.com", False),
])
def test_uri_subtrees(uri, base, inside):
    assert permits(_permitted(x509.UniformResourceIdentifier(base)), x509.UniformResourceIdentifier(uri)) is inside


def test_a_form_without_permitted_subtrees_is_free_and_excluded_subtrees_win():
    constraints = x509.NameConstraints(permitted_subtrees=[x509.DNSName("example.com")],
                                       excluded_subtrees=[x509.DNSName("bad.example.com"),
                                                          x509.IPAddress(ipaddress.ip_network("10.9.0.0/16"))])
    assert permits(constraints, x509.IPAddress(ipaddress.ip_address("192.0.2.1")))
    assert not permits(constraints, x509.IPAddress(ipaddress.ip_address("10.9.1.1")))
    assert not permits(constraints, x509.DNSName("db.bad.example.com"))
    assert permits(constraints, x509.DNSName("db.good.example.com"))
    assert not permits(_permitted(x509.IPAddress(ipaddress.ip_network("10.0.0.0/8"))),
                       x509.IPAddress(ipaddress.ip_address("::1")))
