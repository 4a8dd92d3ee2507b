"""Why a server refused our client certificate: the server's answer (a TLS alert or an
HTTP 400 page) combined with a local look at the certificate. Pure.

What each server says (observed with the servers' default OpenSSL mapping of the
X509_V_ERR codes to alerts, RFC 8446 6.2):
  * Apache mod_ssl and HAProxy refuse in the handshake with an alert:
    certificate_expired (45), certificate_revoked (44), unknown_ca (48; also for a
    missing intermediate), unsupported_certificate (43; wrong purpose),
    bad_certificate (42; e.g. not yet valid), certificate_required (116, TLS 1.3) or
    handshake_failure (40, TLS 1.2) when no certificate was sent.
  * Nginx completes the handshake and answers HTTP 400, "No required SSL certificate
    was sent" or "The SSL certificate error", whatever the cause: only the local check
    can tell which.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

from cryptography import x509

from mtlskit.verify.checks import describe, is_self_issued, reissue_hint
from mtlskit.verify.findings import Finding, error, has_error
from mtlskit.verify.session import Attempt

NGINX_NO_CERT = "No required SSL certificate was sent"
NGINX_CERT_ERROR = "The SSL certificate error"
# What mtlskit's `--mode optional --require-on PREFIX` configurations answer, with HTTP
# 403, on a protected path without a verified certificate (deploy/render.py DENY_BODY;
# a unit test keeps the two equal without making verify import deploy).
DENY_BODY = "client certificate required"

ALERT_CODES = {
    45: "client-cert-expired", 44: "client-cert-revoked", 43: "client-cert-wrong-purpose",
    48: "client-cert-untrusted", 116: "client-cert-missing",
}


class ServerKind(str, enum.Enum):
    NGINX = "nginx"
    APACHE = "apache"
    HAPROXY = "haproxy"
    UNKNOWN = "unknown"


def server_kind(*attempts: Attempt) -> ServerKind:
    """Tell the server software from what it said (Server header, nginx's error pages)."""
    for attempt in attempts:
        server = (attempt.http_server or "").lower()
        if "nginx" in server or NGINX_NO_CERT in attempt.http_body or NGINX_CERT_ERROR in attempt.http_body:
            return ServerKind.NGINX
        if "apache" in server:
            return ServerKind.APACHE
        if "haproxy" in server:
            return ServerKind.HAPROXY
    return ServerKind.UNKNOWN


def _cut_off(attempt: Attempt) -> bool:
    """The connection was dropped without an answer (not merely a silent non-HTTP service)."""
    return attempt.http_status is None and attempt.error not in (None, "timed out")


def denied_on_path(attempt: Attempt) -> bool:
    """Did the server answer the path with 403 "client certificate required"?"""
    return attempt.http_status == 403 and DENY_BODY in attempt.http_body.lower()


def refused_without_cert(attempt: Attempt) -> bool:
    """Did the server refuse a connection that sent no client certificate?"""
    if attempt.alert in (116, 40) or NGINX_NO_CERT in attempt.http_body:
        return True
    return attempt.cert_requested and (not attempt.handshake_ok or _cut_off(attempt))


def refused_with_cert(attempt: Attempt) -> bool:
    """Did the server refuse the connection in which we presented a certificate?"""
    if not attempt.handshake_ok or attempt.alert not in (None, 0) or _cut_off(attempt):
        return True
    if denied_on_path(attempt):
        return True
    return attempt.http_status == 400 and (NGINX_CERT_ERROR in attempt.http_body or NGINX_NO_CERT in attempt.http_body)


# --- hints naming the server-side setting ---

_SERVER_TRUST = {
    ServerKind.NGINX: "ssl_client_certificate", ServerKind.APACHE: "SSLCACertificateFile",
    ServerKind.HAPROXY: "ca-file on the bind line",
}
_SERVER_DEPTH = {ServerKind.NGINX: "ssl_verify_depth", ServerKind.APACHE: "SSLVerifyDepth",
                 ServerKind.HAPROXY: "the depth of ca-file"}
_SERVER_REQUIRE = {
    ServerKind.NGINX: "set `ssl_verify_client on;` and `ssl_client_certificate ca.pem;` in the server block",
    ServerKind.APACHE: "set `SSLVerifyClient require` and `SSLCACertificateFile ca.pem` in the virtual host",
    ServerKind.HAPROXY: "add `verify required ca-file ca.pem` to the bind line",
}


_SERVER_CRL = {
    ServerKind.NGINX: "add `ssl_crl crl.pem;` (CRLs of every CA in the chain) to the server block",
    ServerKind.APACHE: "add `SSLCARevocationFile crl.pem` and `SSLCARevocationCheck chain`",
    ServerKind.HAPROXY: "add `crl-file crl.pem` to the bind line",
}


def accepted_anyway_hint(code: str, kind: ServerKind) -> str:
    """What to change on a server that accepted a certificate it should have refused."""
    if code == "client-cert-revoked":
        return _SERVER_CRL.get(kind, "make the server check revocation (nginx ssl_crl, Apache "
                               "SSLCARevocationFile, HAProxy crl-file) and publish the CRL there")
    return "make the server verify client certificates fully (validity, purpose, trusted CA)"


def _trust_setting(kind: ServerKind) -> str:
    return _SERVER_TRUST.get(kind, "the server's client CA file (nginx ssl_client_certificate, Apache "
                             "SSLCACertificateFile, HAProxy ca-file)")


def not_requested_hint(kind: ServerKind) -> str:
    return _SERVER_REQUIRE.get(kind, "configure the server to require client certificates (nginx ssl_verify_client "
                               "on, Apache SSLVerifyClient require, HAProxy verify required)")


# --- the local check ---

@dataclass(frozen=True)
class ClientIdentity:
    """What the client presents: its leaf, the CA certificates it sends, and what else we know."""

    leaf: x509.Certificate
    sent_chain: list[x509.Certificate]
    known_cas: list[x509.Certificate]  # the home's CA, --ca: used only to tell "incomplete" from "untrusted"
    revoked: Finding | None = None     # from the inventory or a CRL, when we know


def local_findings(client: ClientIdentity, ca_names: list[x509.Name], at: dt.datetime,
                   kind: ServerKind) -> list[Finding]:
    """Every reason the server may have had, most specific first."""
    leaf, name = client.leaf, describe(client.leaf)
    found: list[Finding] = []
    at = at.replace(microsecond=0)
    if at > leaf.not_valid_after_utc:
        found.append(error("client-cert-expired", f"the client certificate {name} expired on "
                           f"{leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC",
                           reissue_hint("client")))
    elif at < leaf.not_valid_before_utc:
        found.append(error("client-cert-not-yet-valid", f"the client certificate {name} is valid only from "
                           f"{leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC",
                           "check the clocks of the client, the server and the CA, or wait until then"))
    found += _purpose(leaf)
    if client.revoked is not None:
        found.append(client.revoked)
    found += _trust(client, ca_names, kind)
    return found


def _purpose(leaf: x509.Certificate) -> list[Finding]:
    try:
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return []
    if x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH in eku or x509.oid.ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in eku:
        return []
    return [error("client-cert-wrong-purpose", f"the certificate {describe(leaf)} is not a client certificate "
                  "(no clientAuth extended key usage)",
                  "issue a client certificate (mtlskit issue client NAME) and use that one")]


def _reaches(leaf: x509.Certificate, pool: list[x509.Certificate], names: list[x509.Name]) -> list[x509.Certificate] | None:
    """The CA certificates, from ``pool``, that lead from ``leaf`` to one of ``names``."""
    path, current = [], leaf
    while current.issuer not in names:
        step = next((c for c in pool if c.subject == current.issuer and c not in path and c != current), None)
        if step is None or is_self_issued(step):
            return None
        path.append(step)
        current = step
    return path


def _trust(client: ClientIdentity, names: list[x509.Name], kind: ServerKind) -> list[Finding]:
    if not names:
        return []  # the server named no CA: nothing to compare with
    if _reaches(client.leaf, client.sent_chain, names) is not None:
        return []
    accepted = "; ".join(n.rfc4514_string() for n in names)
    issuer = client.leaf.issuer.rfc4514_string()
    completed = _reaches(client.leaf, client.sent_chain + client.known_cas, names)
    if completed:
        missing = ", ".join(describe(c) for c in completed if c not in client.sent_chain)
        fix = {ServerKind.NGINX: "add the intermediate to ssl_client_certificate or raise ssl_verify_depth",
               ServerKind.APACHE: "add the intermediate to SSLCACertificateFile or raise SSLVerifyDepth",
               ServerKind.HAPROXY: "add the intermediate to the bind line's ca-file"}.get(kind, "")
        return [error("client-chain-incomplete",
                      f"the client sent {describe(client.leaf)} without its intermediate CA {missing}; the server "
                      f"trusts only {accepted}",
                      "send the intermediate with the certificate (use fullchain.pem as the client certificate)"
                      + (f", or on the server {fix}" if fix else ""))]
    return [error("client-cert-untrusted",
                  f"the client certificate is issued by {issuer}, which is not among the CAs the server accepts "
                  f"({accepted})",
                  f"use a certificate from one of those CAs, or add {issuer} to {_trust_setting(kind)}")]


def explain_refusal(attempt: Attempt, local: list[Finding], kind: ServerKind) -> list[Finding]:
    """Order the causes of a refusal: what the server said, confirmed or refined locally."""
    said = ALERT_CODES.get(attempt.alert or -1)
    if attempt.http_status == 400 and NGINX_NO_CERT in attempt.http_body:
        said = "client-cert-missing"
    if denied_on_path(attempt) and has_error(local):
        said = None  # the 403 says only "not verified"; the local checks say why
    elif denied_on_path(attempt):
        said = "client-cert-required"
    codes = [f.code for f in local]
    if said == "client-cert-untrusted" and "client-chain-incomplete" in codes:
        said = "client-chain-incomplete"
    if said is None or said in codes:
        ordered = sorted(local, key=lambda f: f.code != said)
    else:
        ordered = [_from_server(said, attempt)] + local
    if ordered:
        return ordered
    how = f"the TLS alert {attempt.alert_name}" if attempt.alert else (
        f"HTTP {attempt.http_status}" if attempt.http_status else attempt.error or "closing the connection")
    return [error("client-cert-rejected", f"the server refused the client certificate with {how}, and the "
                  "local checks found no reason", "read the server's error log for the verification error")]


def _from_server(code: str, attempt: Attempt) -> Finding:
    messages = {
        "client-cert-expired": ("the server says the client certificate has expired", reissue_hint("client")),
        "client-cert-revoked": ("the server says the client certificate is revoked", "issue a new certificate"),
        "client-cert-wrong-purpose": ("the server says the certificate is not usable for client authentication",
                                      "issue a client certificate (clientAuth extended key usage)"),
        "client-cert-untrusted": ("the server does not know the CA of the client certificate",
                                  "use a certificate from a CA the server trusts, and send its intermediates"),
        "client-cert-missing": ("the server says no client certificate was sent",
                                "pass --cert and --key; check that the certificate's CA is one the server names"),
        "client-cert-required": ("the server answered HTTP 403 \"client certificate required\" although a "
                                 "certificate was sent, so it did not accept it as verified",
                                 "read the server's error log; check that the certificate's CA is one the "
                                 "server trusts and that the server verifies certificates on this path"),
    }
    message, hint = messages[code]
    source = f" (TLS alert {attempt.alert_name})" if attempt.alert else ""
    return error(code, message + source, hint)
