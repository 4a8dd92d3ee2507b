"""``mtlskit probe``: connect to a live endpoint and say, in plain words, why mTLS fails.

1. Without a client certificate: TLS versions, the server's chain (verified with
   mtlskit's verifier against --ca or the system store, and the name), whether the
   server requests and requires a client certificate, and the CA names it advertises.
2. With --cert/--key: connect again; on refusal, combine the server's answer with a
   local check of the certificate (diagnose.py).
The network is session.py; everything here is decisions.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mtlskit.errors import BadInput, UsageError
from mtlskit.verify import crl as crlmod
from mtlskit.verify import diagnose, files
from mtlskit.verify.checks import Purpose, describe
from mtlskit.verify.findings import Finding, Level, error, has_error, info, warning
from mtlskit.verify.session import Attempt, Target, connect
from mtlskit.verify.verifier import VerifyRequest, verify

RevocationSource = Callable[[list[x509.Certificate], dt.datetime], list[Finding]]


@dataclass(frozen=True)
class DeployedCrl:
    """The CRL file a deployment recorded in the CA home serves from (for its dates)."""

    name: str
    path: Path
    crls: list[x509.CertificateRevocationList]


@dataclass(frozen=True)
class ProbeRequest:
    """What to probe.

    Attributes:
        target: host, port, SNI name and path.
        url: the URL as the user gave it (echoed in the report).
        cert, key: the client certificate file (leaf first, then what to send) and key.
        anchors: CAs to verify the server with; None means the system store.
        known_cas: CA certificates we know (the home's CA), to tell a missing
            intermediate from a foreign CA.
        revocation: revocation sources, in order: each that covers the client's path is
            asked, until one that is ``authoritative`` (the inventory) has answered; the
            others fetch the CRL/OCSP the certificate names (remote.py).
        deployed_crl: the CRL file of the deployment at this address, when the home knows it.
        at: the time the checks assume (now, except in tests).
    """

    target: Target
    url: str
    at: dt.datetime
    cert: Path | None = None
    key: Path | None = None
    anchors: list[x509.Certificate] | None = None
    known_cas: list[x509.Certificate] = field(default_factory=list)
    revocation: list[RevocationSource] = field(default_factory=list)
    deployed_crl: DeployedCrl | None = None
    timeout: float = 5.0


@dataclass
class ProbeReport:
    url: str
    tls_version: str | None = None
    tls_versions: list[str] = field(default_factory=list)
    client_auth: str = "none"
    acceptable_cas: list[str] = field(default_factory=list)
    http_status: int | None = None
    server: str = diagnose.ServerKind.UNKNOWN.value
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not has_error(self.findings)

    def to_dict(self) -> dict:
        return {"ok": self.ok, "url": self.url, "tls_version": self.tls_version,
                "tls_versions": self.tls_versions, "client_auth": self.client_auth,
                "acceptable_cas": self.acceptable_cas, "http_status": self.http_status,
                "server": self.server, "findings": [f.to_dict() for f in self.findings]}


def parse_target(text: str, servername: str | None = None) -> tuple[Target, str]:
    """``https://host[:port]/path`` or ``host:port`` (port 443 when absent)."""
    raw = text if "://" in text else f"https://{text}"
    parts = urlsplit(raw)
    if parts.scheme != "https" or not parts.hostname:
        raise UsageError(f"cannot probe {text!r}", hint="give https://HOST[:PORT]/PATH or HOST:PORT")
    try:
        port = parts.port or 443
    except ValueError:
        raise UsageError(f"bad port in {text!r}") from None
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    host = parts.hostname
    sni = servername or (None if _is_ip(host) else host)
    return Target(host, port, sni, path), raw


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def probe(request: ProbeRequest) -> ProbeReport:
    """Run both phases and return the report; never raises for what the server does."""
    report = ProbeReport(url=request.url)
    base = connect(request.target, timeout=request.timeout)
    if not (base.handshake_ok or base.server_chain):
        report.findings.append(error("connection-failed", f"no TLS handshake with {request.target.host}:"
                                     f"{request.target.port}: {base.error}",
                                     "check the address, the port and that the server speaks TLS there"))
        return report
    report.tls_version = base.tls_version
    report.tls_versions = _versions(request)
    report.http_status = base.http_status
    report.acceptable_cas = [n.rfc4514_string() for n in base.ca_names]
    report.findings += _server_findings(request, base)
    report.findings += _deployed_crl_findings(request)
    kind = diagnose.server_kind(base)
    report.client_auth = _client_auth(base)
    if report.client_auth == "none":
        report.findings.append(error("client-auth-not-requested", "the server does not ask for a client "
                                     "certificate, so anyone can connect", diagnose.not_requested_hint(kind)))
    if request.cert is None:
        report.findings += _without_certificate(request, report, base)
        report.server = kind.value
        return _finish(report, with_cert=False)
    _with_certificate(request, report, base)
    return _finish(report, with_cert=True)


def _without_certificate(request: ProbeRequest, report: ProbeReport, base: Attempt) -> list[Finding]:
    if report.client_auth == "required":
        return [error("client-cert-missing", "the server requires a client certificate and none was sent",
                      "pass --cert and --key to probe with one")]
    if diagnose.denied_on_path(base):
        # TLS let us in, but the path is protected (mtlskit deploy --mode optional --require-on).
        report.client_auth = "required"
        return [error("client-cert-required", f"the server requires a client certificate for "
                      f"{request.target.path} (HTTP 403 \"{diagnose.DENY_BODY}\") and none was sent",
                      "pass --cert and --key to probe with one; paths outside the server's protected "
                      "prefixes (--require-on) do not need one")]
    return []


def _finish(report: ProbeReport, with_cert: bool) -> ProbeReport:
    if report.ok:
        status = f"HTTP {report.http_status}" if report.http_status is not None else "no HTTP answer"
        what = ("mutual TLS works" if with_cert else
                "TLS works; the server accepts connections without a client certificate")
        report.findings.append(info("ok", f"{what} ({report.tls_version}, {status})"))
    return report


def _versions(request: ProbeRequest) -> list[str]:
    found = []
    for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
        attempt = connect(request.target, version=version, request=False, timeout=request.timeout)
        if attempt.handshake_ok or attempt.server_chain:
            found.append(attempt.tls_version or version.name.replace("_", "."))
    return found


def _client_auth(base: Attempt) -> str:
    if not base.cert_requested:
        return "none"
    return "required" if diagnose.refused_without_cert(base) else "optional"


_SERVER_CODES = {"cert-expired": "server-cert-expired", "name-mismatch": "server-name-mismatch"}


def _server_findings(request: ProbeRequest, base: Attempt) -> list[Finding]:
    if not base.server_chain:
        return [warning("server-chain-unseen", "the server's certificate could not be read")]
    anchors = request.anchors if request.anchors is not None else system_anchors()
    if not anchors:
        return [warning("server-cert-not-checked", "no system CA store found; the server chain was not checked",
                        "pass the server's CA with --ca")]
    leaf, *chain = base.server_chain
    host = request.target.servername or request.target.host
    result = verify(VerifyRequest(leaf=leaf, anchors=anchors, chain=chain, at=request.at,
                                  purpose=Purpose.SERVER, host=host))
    found = []
    for f in result.findings:
        if f.level is Level.ERROR:
            code = _SERVER_CODES.get(f.code, "server-cert-untrusted")
            found.append(error(code, f"server certificate: {f.message}", f.hint if code != "server-cert-untrusted"
                               else "pass the server's CA with --ca, or fix the chain the server sends "
                               "(nginx ssl_certificate fullchain.pem, Apache SSLCertificateFile, HAProxy crt)"))
    return found


def system_anchors() -> list[x509.Certificate]:
    """The system's trusted roots, from the bundle OpenSSL would use."""
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if candidate and Path(candidate).is_file():
            try:
                found = files.parse_trust_bundle(Path(candidate).read_bytes())
            except OSError:
                continue
            if found:
                return found
    return []


def _with_certificate(request: ProbeRequest, report: ProbeReport, base: Attempt) -> None:
    certs = files.load_certificates(request.cert, "client certificate")
    mismatch = _key_mismatch(certs[0], request.key or request.cert)
    kind = diagnose.server_kind(base)
    if mismatch:
        report.server = kind.value
        report.findings.insert(_first_client_slot(report), mismatch)
        return
    attempt = connect(request.target, cert=str(request.cert), key=str(request.key or request.cert),
                      timeout=request.timeout)
    kind = diagnose.server_kind(base, attempt)
    report.server = kind.value
    report.tls_version = attempt.tls_version or report.tls_version
    report.http_status = attempt.http_status
    revoked, notes = _revocation(request, certs)
    client = diagnose.ClientIdentity(certs[0], certs[1:], request.known_cas, revoked)
    local = diagnose.local_findings(client, base.ca_names, request.at, kind)
    if diagnose.refused_with_cert(attempt):
        refusal = diagnose.explain_refusal(attempt, local, kind)
        if not has_error(local):
            # Nothing wrong with the client: a deployment whose CRL expired refuses every client
            # (OpenSSL's X509_V_ERR_CRL_HAS_EXPIRED, sent as a certificate_expired alert).
            stale = [f for f in report.findings if f.code in ("crl-expired", "crl-not-yet-valid")]
            report.findings = [f for f in report.findings if f not in stale]
            refusal = stale + refusal
        slot = _first_client_slot(report)
        report.findings[slot:slot] = refusal
    else:
        for f in local:  # accepted although something is wrong: the server does not check it
            report.findings.append(warning(f.code, f"the server accepted the certificate, but {f.message}",
                                           diagnose.accepted_anyway_hint(f.code, kind)))
    report.findings += notes


def _first_client_slot(report: ProbeReport) -> int:
    """Client findings go before a client-auth-not-requested note but after server ones."""
    return len([f for f in report.findings if f.code.startswith("server-")])


def _revocation(request: ProbeRequest, certs: list[x509.Certificate]) -> tuple[Finding | None, list[Finding]]:
    """(the client's revocation as an error, or None; the other notes of the sources as warnings).

    The notes (a CRL that could not be fetched, one about to expire, an OCSP "good") are
    about the client's CA, not the handshake: they never make the probe fail by themselves.
    """
    path = _path_to_known(certs[0], certs[1:] + request.known_cas)
    found: list[Finding] = []
    for source in request.revocation:
        if not getattr(source, "covers", lambda _: True)(path):
            continue
        found += source(path, request.at)
        if getattr(source, "authoritative", False):
            break
    revoked = next((error("client-cert-revoked", f.message, f.hint) for f in found if f.code == "revoked"), None)
    notes = [f if f.level is not Level.ERROR else warning(f.code, f.message, f.hint)
             for f in found if f.code != "revoked"]
    return revoked, notes


def _deployed_crl_findings(request: ProbeRequest) -> list[Finding]:
    """Dates of the CRL file the deployment at this address serves from (expired: every
    client is refused; expiring within a day: a warning saying how to keep it fresh)."""
    deployed = request.deployed_crl
    if deployed is None:
        return []
    where = f" in {deployed.path} (deployment {deployed.name})"
    found: list[Finding] = []
    for crl in deployed.crls:
        issuer = next((c for c in request.known_cas if c.subject == crl.issuer), None)
        who = describe(issuer) if issuer is not None else f"'{crl.issuer.rfc4514_string()}'"
        found += crlmod.check_published(crl, who, request.at, where)
    return found


def _path_to_known(leaf: x509.Certificate, pool: list[x509.Certificate]) -> list[x509.Certificate]:
    path = [leaf]
    while True:
        step = next((c for c in pool if c.subject == path[-1].issuer and c not in path), None)
        if step is None:
            return path
        path.append(step)


def _key_mismatch(cert: x509.Certificate, key_file: Path) -> Finding | None:
    data = files.read_file(key_file, "key")
    try:
        key = serialization.load_pem_private_key(data, None)
    except TypeError:
        raise BadInput(f"the key {key_file} is encrypted", hint="probe needs an unencrypted key.pem") from None
    except ValueError:
        raise BadInput(f"{key_file} does not hold a private key in PEM") from None
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if key.public_key().public_bytes(*fmt) == cert.public_key().public_bytes(*fmt):
        return None
    return error("client-key-mismatch", f"the key {key_file} does not belong to the certificate {describe(cert)}",
                 "use the key.pem written together with this certificate")
