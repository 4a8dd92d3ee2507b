"""policy.toml: what is accepted, what is refused (one sentence each), and how it matches."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mtlskit.authz.identity import first_rule, identity_of
from mtlskit.authz.policy import parse_policy, path_covered
from mtlskit.errors import BadInput

ISSUE_EXAMPLE = b'''
[[rule]]
name = "admins"
match = { cn = ["alice"], san_uri = ["spiffe://corp/admin/*"] }   # also san_dns, san_email, ou, issuer
paths = ["/admin/"]
methods = ["GET", "POST"]          # optional; any method when absent
'''


def rule_text(match: str = 'cn = ["alice"]', paths: str = '["/admin/"]', extra: str = "") -> bytes:
    return f'[[rule]]\nname = "r"\nmatch = {{ {match} }}\npaths = {paths}\n{extra}'.encode()


def certificate(cn: str = "alice", ou: str | None = None, sans: list | None = None) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if ou:
        attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou))
    now = dt.datetime.now(dt.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(x509.Name(attributes))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA Intermediate")]))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1)))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(key, hashes.SHA256())


def test_the_issue_example_is_read_as_written():
    [rule] = parse_policy(ISSUE_EXAMPLE).rules
    assert rule.name == "admins" and rule.paths == ("/admin/",)
    assert rule.match == {"cn": ("alice",), "san_uri": ("spiffe://corp/admin/*",)}
    assert rule.methods == {"GET", "POST"}


@pytest.mark.parametrize("text, says", [
    (b"", "no [[rule]]"),
    (b"version = 2\n" + rule_text(), "unknown top-level key 'version'"),
    (b"[[rule]]\n", "rule 1: is empty"),
    (rule_text(extra='action = "deny"\n'), "unknown key 'action'"),
    (rule_text(match='cn = ["alice"], subject = ["x"]'), "unknown match key 'subject'"),
    (rule_text(match=""), "match must be a non-empty table"),
    (rule_text(match='cn = "alice"'), "match.cn must be a non-empty list"),
    (rule_text(match="cn = [1]"), "non-empty strings"),
    (rule_text(match="cn = []"), "match.cn must be a non-empty list"),
    (rule_text(paths='"/admin/"'), "paths must be a non-empty list"),
    (rule_text(paths="[]"), "paths must be a non-empty list"),
    (rule_text(extra='methods = "GET"\n'), "methods must be a non-empty list"),
    (rule_text(extra='methods = ["GET POST"]\n'), "is not an HTTP method"),
    (b'[[rule]]\nname = 1\nmatch = { cn = ["a"] }\npaths = ["/"]\n', "name must be"),
    (b'[[rule]]\nname = "a b"\nmatch = { cn = ["a"] }\npaths = ["/"]\n', "name must be"),
    (rule_text() + rule_text(), "rule name 'r' is used twice"),
    (b"[[rule]\n", "not a TOML file"),
    (b"\xff\xfe", "not a TOML file"),
    (b"rule = 3\n", "no [[rule]]"),
])
def test_malformed_policies_are_refused_in_one_sentence(text, says):
    with pytest.raises(BadInput) as caught:
        parse_policy(text, "policy.toml")
    assert says in caught.value.message
    assert "\n" not in caught.value.message and caught.value.message.startswith("policy.toml:")


@pytest.mark.parametrize("match", [
    'cn = ["*"]', 'ou = ["*"]', 'issuer = ["*"]', 'san_dns = ["*"]', 'san_dns = ["*.com"]',
    'san_dns = ["a.*.example.com"]', 'san_dns = ["*example.com"]', 'san_email = ["*"]',
    'san_email = ["*@*"]', 'san_email = ["a*@example.com"]', 'san_uri = ["*"]',
    'san_uri = ["spiffe://*"]', 'san_uri = ["spiffe://corp*"]', 'san_uri = ["spiffe://corp/a*"]',
    'san_uri = ["spiffe://corp/*/admin"]', 'cn = ["al*"]',
])
def test_globs_that_match_too_much_are_refused(match):
    with pytest.raises(BadInput, match="matches too much"):
        parse_policy(rule_text(match=match))


@pytest.mark.parametrize("value", ['a\\nb', 'a\\rb', 'a\\"b', "a'b", "a\\\\b", 'a\\u0000b', 'a\\u2028b'])
def test_control_characters_quotes_and_backslashes_are_refused(value):
    with pytest.raises(BadInput, match="control character, quote or backslash"):
        parse_policy(rule_text(match=f'cn = ["{value}"]'))


@pytest.mark.parametrize("path", ["admin", "/admin/*", "/a//b", "/a/../b", "/a/./b", "/%61dmin", "/a?b",
                                  "/a#b", "/a b", '/a\\"b'])
def test_paths_must_be_plain_decoded_prefixes(path):
    with pytest.raises(BadInput):
        parse_policy(rule_text(paths=f'["{path}"]'))


@pytest.mark.parametrize("prefix, path, covered", [
    ("/admin/", "/admin/", True), ("/admin/", "/admin/x", True), ("/admin/", "/admin", False),
    ("/admin/", "/ADMIN/x", False), ("/admin/", "/administrator", False),
    ("/admin", "/admin", True), ("/admin", "/admin/x", True), ("/admin", "/administrator", False),
    ("/", "/anything", True), ("/admin/", "/x/admin/", False), ("/admin/", "/admin;x/", False),
])
def test_path_prefixes_respect_segments_and_case(prefix, path, covered):
    assert path_covered(prefix, path) is covered


def test_methods_are_upper_cased_and_strict():
    policy = parse_policy(rule_text(extra='methods = ["get", "Post"]\n'))
    identity = identity_of(certificate("alice"), "intermediate")
    assert first_rule(policy, identity, "GET", "/admin/x").name == "r"
    assert first_rule(policy, identity, "POST", "/admin/x").name == "r"
    assert first_rule(policy, identity, "HEAD", "/admin/x") is None      # only where listed
    assert first_rule(policy, identity, "get", "/admin/x") is None       # nginx sends methods upper case


def test_no_methods_means_any_method():
    policy = parse_policy(rule_text())
    identity = identity_of(certificate("alice"), "intermediate")
    assert all(first_rule(policy, identity, m, "/admin/") for m in ("GET", "DELETE", "PATCH"))


@pytest.mark.parametrize("match, cert, allowed", [
    ('cn = ["alice"]', dict(cn="alice"), True),
    ('cn = ["alice"]', dict(cn="Alice"), False),
    ('cn = ["alice"]', dict(cn="alice2"), False),
    ('ou = ["Ops"]', dict(cn="x", ou="Ops"), True),
    ('ou = ["Ops"]', dict(cn="Ops"), False),
    ('san_dns = ["api.example.com"]', dict(sans=[x509.DNSName("API.example.com")]), True),
    ('san_dns = ["*.example.com"]', dict(sans=[x509.DNSName("a.example.com")]), True),
    ('san_dns = ["*.example.com"]', dict(sans=[x509.DNSName("a.b.example.com")]), False),
    ('san_dns = ["*.example.com"]', dict(sans=[x509.DNSName("example.com")]), False),
    ('san_dns = ["*.example.com"]', dict(sans=[x509.DNSName("aexample.com")]), False),
    ('san_email = ["*@example.com"]', dict(sans=[x509.RFC822Name("Bob@Example.com")]), True),
    ('san_email = ["*@example.com"]', dict(sans=[x509.RFC822Name("bob@evil-example.com")]), False),
    ('san_uri = ["spiffe://corp/admin/*"]', dict(sans=[x509.UniformResourceIdentifier("spiffe://corp/admin/ci")]), True),
    ('san_uri = ["spiffe://corp/admin/*"]', dict(sans=[x509.UniformResourceIdentifier("spiffe://corp/admin/")]), False),
    ('san_uri = ["spiffe://corp/admin/*"]', dict(sans=[x509.UniformResourceIdentifier("spiffe://corp/administrator")]), False),
    ('san_uri = ["spiffe://corp/admin/*"]', dict(sans=[x509.UniformResourceIdentifier("spiffe://corporate/admin/x")]), False),
    ('san_uri = ["spiffe://corp/web"]', dict(sans=[x509.UniformResourceIdentifier("spiffe://corp/web")]), True),
    ('san_uri = ["spiffe://corp/web"]', dict(cn="spiffe://corp/web"), False),       # a CN is not a SAN
    ('san_dns = ["alice"]', dict(cn="alice"), False),
    ('issuer = ["intermediate"]', dict(cn="x"), True),
    ('issuer = ["CN=Test CA Intermediate"]', dict(cn="x"), True),
    ('issuer = ["other"]', dict(cn="x"), False),
])
def test_identity_keys_match_only_their_own_field(match, cert, allowed):
    policy = parse_policy(rule_text(match=match, paths='["/"]'))
    identity = identity_of(certificate(**{"cn": "nobody", **cert}), "intermediate")
    assert (first_rule(policy, identity, "GET", "/") is not None) is allowed


def test_the_first_matching_rule_names_the_decision_and_anything_else_is_denied():
    policy = parse_policy(b'''
[[rule]]
name = "readers"
match = { ou = ["staff"] }
paths = ["/docs/"]
methods = ["GET"]

[[rule]]
name = "admins"
match = { cn = ["alice"] }
paths = ["/"]
''')
    alice = identity_of(certificate("alice", ou="staff"), "intermediate")
    bob = identity_of(certificate("bob", ou="staff"), "intermediate")
    assert first_rule(policy, alice, "GET", "/docs/a").name == "readers"
    assert first_rule(policy, alice, "POST", "/docs/a").name == "admins"
    assert first_rule(policy, bob, "POST", "/docs/a") is None
    assert first_rule(policy, bob, "GET", "/admin/") is None
