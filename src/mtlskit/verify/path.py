"""Path building and validation, delegated to ``cryptography.x509.verification``.

cryptography implements RFC 5280 path building with the CA/B ("webpki") profile:
signatures, validity of every certificate, basic constraints and path length, name
constraints, EKU, and the server name. We relax two rules: a CA certificate without a
keyUsage extension is accepted (RFC 5280 6.3.3 (f) and 4.2.1.3 make the extension
optional; when present it must assert keyCertSign), and a client certificate may have
no subjectAltName (RFC 5280 4.2.1.6 requires one only when the subject is empty). Everything else it does not do
(revocation, finer purpose messages, chain files) lives in the sibling modules.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.verification import (
    Criticality, ExtensionPolicy, PolicyBuilder, Store, VerificationError,
)

from mtlskit.verify.checks import Purpose, describe
from mtlskit.verify.findings import Finding, error, info


@dataclass(frozen=True)
class PathResult:
    """The validated path (leaf first, trust anchor last), or None with the reason."""

    path: list[x509.Certificate] | None
    findings: list[Finding] = field(default_factory=list)


def _ca_key_usage(policy, cert: x509.Certificate, ku: x509.KeyUsage | None) -> None:
    if ku is not None and not ku.key_cert_sign:
        raise ValueError("CA keyUsage does not assert keyCertSign")


def _policies(purpose: Purpose) -> tuple[ExtensionPolicy, ExtensionPolicy]:
    ca = ExtensionPolicy.webpki_defaults_ca().may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, _ca_key_usage)
    ee = ExtensionPolicy.webpki_defaults_ee()
    if purpose is Purpose.CLIENT:
        # Client certificates named only by their subject CN are common in mTLS (the
        # classic openssl tutorials issue them); servers authorise on the subject DN.
        ee = ee.may_be_present(x509.SubjectAlternativeName, Criticality.AGNOSTIC, None)
    return ca, ee


def subject_for(host: str) -> x509.DNSName | x509.IPAddress:
    """The verifier's idea of a server name: an IP address SAN if it parses as one."""
    try:
        return x509.IPAddress(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return x509.DNSName(host.rstrip(".").lower())


def _default_subject(leaf: x509.Certificate) -> x509.DNSName | x509.IPAddress | None:
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    for name in san:
        if isinstance(name, x509.DNSName) and not name.value.startswith("*."):
            return name
        if isinstance(name, x509.IPAddress):
            return name
    wild = san.get_values_for_type(x509.DNSName)
    return x509.DNSName("x" + wild[0][1:]) if wild else None


def build_path(leaf: x509.Certificate, intermediates: list[x509.Certificate],
               anchors: list[x509.Certificate], *, purpose: Purpose, at: dt.datetime,
               host: str | None = None, max_depth: int | None = None) -> PathResult:
    """Build and validate a path from ``leaf`` to one of ``anchors``.

    Args:
        leaf: the end-entity certificate.
        intermediates: untrusted certificates that may be used to build the path.
        anchors: trusted certificates (usually roots).
        purpose: client or server; selects the verifier and the EKU it requires.
        at: the validation time.
        host: for servers, the name the client would connect to.
        max_depth: the most intermediates allowed (cryptography's default otherwise).
    """
    if not anchors:
        return PathResult(None, [error("chain-untrusted", "no trusted CA certificate was given",
                                       "pass the CA certificate with --ca")])
    builder = PolicyBuilder().store(Store(anchors)).time(at)
    ca_policy, ee_policy = _policies(purpose)
    builder = builder.extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
    if max_depth is not None:
        builder = builder.max_chain_depth(max_depth)
    notes: list[Finding] = []
    try:
        if purpose is Purpose.CLIENT:
            chain = builder.build_client_verifier().verify(leaf, intermediates).chain
        else:
            subject = subject_for(host) if host else _default_subject(leaf)
            if subject is None:
                return PathResult(None, [error("no-san", f"{describe(leaf)} has no DNS or IP subject alternative "
                                               "name, so no client can match it", "reissue it with --san")])
            if not host:
                notes.append(info("name-not-checked", "no --host given; the server name was not checked"))
            chain = builder.build_server_verifier(subject).verify(leaf, intermediates)
    except (VerificationError, ValueError) as exc:
        return PathResult(None, [_explain(exc, leaf, anchors + intermediates, host)])
    return PathResult(list(chain), notes)


def signed_by_trusted(leaf: x509.Certificate, intermediates: list[x509.Certificate],
                      anchors: list[x509.Certificate], max_steps: int = 8) -> bool:
    """Do signatures alone (no dates, no policy) lead from ``leaf`` to one of ``anchors``?"""
    current = leaf
    for _ in range(max_steps):
        if any(_issued(current, anchor) for anchor in anchors):
            return True
        current = next((c for c in intermediates if c != current and _issued(current, c)), None)
        if current is None:
            return False
    return False


def _issued(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _explain(exc: Exception, leaf: x509.Certificate, known: list[x509.Certificate], host: str | None) -> Finding:
    text = str(exc)
    if "no matching subjectAltName" in text and host:
        return error("name-mismatch", f"{describe(leaf)} is not valid for the name {host!r}",
                     "reissue the server certificate with this name as a subject alternative name")
    issuer = leaf.issuer.rfc4514_string()
    if not any(c.subject == leaf.issuer for c in known):
        return error("chain-untrusted", f"the issuer of {describe(leaf)} ({issuer}) is neither a trusted CA "
                     "nor in the chain", "add the intermediate CA to --chain (chain.pem), or its CA to --ca")
    detail = text.removeprefix("validation failed: ").split(" (encountered processing")[0]
    detail = detail.replace("candidates exhausted: ", "").replace(
        "all candidates exhausted with no interior errors", "no path leads to a trusted CA")
    return error("chain-untrusted", f"no valid chain from {describe(leaf)} to a trusted CA: {detail}",
                 "pass the root CA that issued this chain with --ca, and every intermediate with --chain")
