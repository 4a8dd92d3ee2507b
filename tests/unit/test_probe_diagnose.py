"""How probe turns the server's answer plus a local look into one cause (pure)."""

from __future__ import annotations

import pytest

from mtlskit.verify import diagnose
from mtlskit.verify.probe import parse_target
from mtlskit.verify.session import Attempt
from tests.support_verify import NOW, ONE_DAY, make_ca, make_leaf

ROOT = make_ca("Diag Root")
INTER = make_ca("Diag Intermediate", ROOT)
NAMES = [ROOT.cert.subject]


def local(leaf, sent=(), known=(), at=NOW, kind=diagnose.ServerKind.UNKNOWN):
    client = diagnose.ClientIdentity(leaf.cert, [c.cert for c in sent], [c.cert for c in known])
    return diagnose.local_findings(client, NAMES, at, kind)


def test_a_good_client_has_no_local_finding():
    assert local(make_leaf("alice", INTER), sent=[INTER]) == []


def test_missing_intermediate_is_told_apart_from_a_foreign_ca():
    leaf = make_leaf("alice", INTER)
    assert [f.code for f in local(leaf, known=[INTER])] == ["client-chain-incomplete"]
    assert [f.code for f in local(leaf)] == ["client-cert-untrusted"]


def test_nginx_hint_names_its_directives():
    found = local(make_leaf("alice", INTER), known=[INTER], kind=diagnose.ServerKind.NGINX)
    assert "ssl_client_certificate" in found[0].hint and "ssl_verify_depth" in found[0].hint


def test_expired_and_wrong_purpose_come_before_trust():
    leaf = make_leaf("svc", make_ca("Elsewhere"), eku=("server",), not_before=NOW - 9 * ONE_DAY,
                     not_after=NOW - ONE_DAY)
    assert [f.code for f in local(leaf)] == ["client-cert-expired", "client-cert-wrong-purpose",
                                            "client-cert-untrusted"]


@pytest.mark.parametrize("alert, code", [(44, "client-cert-revoked"), (45, "client-cert-expired"),
                                         (43, "client-cert-wrong-purpose"), (48, "client-cert-untrusted")])
def test_alert_alone_names_the_cause(alert, code):
    attempt = Attempt(handshake_ok=True, alert=alert)
    found = diagnose.explain_refusal(attempt, [], diagnose.ServerKind.UNKNOWN)
    assert found[0].code == code and attempt.alert_name in found[0].message


def test_unknown_ca_alert_is_refined_to_chain_incomplete_locally():
    findings = local(make_leaf("alice", INTER), known=[INTER])
    found = diagnose.explain_refusal(Attempt(alert=48), findings, diagnose.ServerKind.UNKNOWN)
    assert [f.code for f in found] == ["client-chain-incomplete"]


def test_generic_refusal_without_local_reason():
    found = diagnose.explain_refusal(Attempt(alert=42), [], diagnose.ServerKind.UNKNOWN)
    assert [f.code for f in found] == ["client-cert-rejected"] and "bad_certificate" in found[0].message


def test_nginx_pages_are_recognised():
    page = Attempt(handshake_ok=True, http_status=400, http_server="nginx/1.22.1",
                   http_body="<title>400 The SSL certificate error</title>")
    assert diagnose.refused_with_cert(page) and diagnose.server_kind(page) is diagnose.ServerKind.NGINX
    assert not diagnose.refused_with_cert(Attempt(handshake_ok=True, http_status=400, http_body="bad json"))


@pytest.mark.parametrize("text, host, port, sni, path", [
    ("https://api.example.com:8443/v1?x=1", "api.example.com", 8443, "api.example.com", "/v1?x=1"),
    ("api.example.com", "api.example.com", 443, "api.example.com", "/"),
    ("127.0.0.1:8443", "127.0.0.1", 8443, None, "/"),
    ("https://[::1]:9443/", "::1", 9443, None, "/"),
])
def test_parse_target(text, host, port, sni, path):
    target, _ = parse_target(text)
    assert (target.host, target.port, target.servername, target.path) == (host, port, sni, path)


@pytest.mark.parametrize("error, refused", [("EOF occurred in violation of protocol", True),
                                            ("timed out", False), (None, False)])
def test_a_dropped_connection_is_a_refusal_but_silence_is_not(error, refused):
    attempt = Attempt(handshake_ok=True, cert_requested=True, error=error)
    assert diagnose.refused_without_cert(attempt) is refused
    assert diagnose.refused_with_cert(attempt) is refused


def test_deny_body_is_the_one_mtlskit_deploy_writes():
    from mtlskit.deploy.render import DENY_BODY
    assert diagnose.DENY_BODY == DENY_BODY


DENIED = Attempt(handshake_ok=True, http_status=403, http_body="client certificate required\n")


def test_a_403_client_certificate_required_with_a_certificate_is_a_refusal():
    assert diagnose.denied_on_path(DENIED) and diagnose.refused_with_cert(DENIED)
    assert not diagnose.denied_on_path(Attempt(handshake_ok=True, http_status=403, http_body="forbidden"))
    found = diagnose.explain_refusal(DENIED, [], diagnose.ServerKind.UNKNOWN)
    assert [f.code for f in found] == ["client-cert-required"] and found[0].hint


def test_a_403_client_certificate_required_defers_to_a_local_cause():
    leaf = make_leaf("old", INTER, not_before=NOW - 9 * ONE_DAY, not_after=NOW - ONE_DAY)
    found = diagnose.explain_refusal(DENIED, local(leaf, sent=[INTER]), diagnose.ServerKind.UNKNOWN)
    assert [f.code for f in found] == ["client-cert-expired"]


def _with_negative_serial(cert) -> bytes:
    """The DER of ``cert`` with its serial's first octet set to 0xFF (a negative INTEGER)."""
    from cryptography.hazmat.primitives.serialization import Encoding
    der = bytearray(cert.public_bytes(Encoding.DER))
    serial = cert.serial_number.to_bytes((cert.serial_number.bit_length() + 8) // 8, "big")
    at = der.index(b"\x02" + bytes([len(serial)]) + serial) + 2
    der[at] = 0xFF
    return bytes(der)


def test_a_system_bundle_with_a_negative_serial_root_loads_the_rest_without_a_warning():
    """Issue 11: probe without --ca leaked a CryptographyDeprecationWarning on stderr."""
    import base64
    import warnings

    from cryptography.hazmat.primitives.serialization import Encoding
    from mtlskit.verify.files import parse_trust_bundle

    bad = _with_negative_serial(ROOT.cert)
    bad_pem = (b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(bad) + b"-----END CERTIFICATE-----\n")
    bundle = INTER.cert.public_bytes(Encoding.PEM) + bad_pem + ROOT.cert.public_bytes(Encoding.PEM)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert parse_trust_bundle(bundle) == [INTER.cert, ROOT.cert]
