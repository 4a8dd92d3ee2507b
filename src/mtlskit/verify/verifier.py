"""``mtlskit verify``: one function that checks a certificate offline and explains.

Order of the checks (the first error is the most specific cause):
  1. the leaf alone: validity at the time, purpose (EKU / key usage), key strength,
     and for servers the CN/SAN consistency;
  2. the path, built and validated by cryptography (see path.py);
  3. on the validated path: structure rules cryptography leaves out (checks.py), name
     constraints on the subject CN and emailAddress, as OpenSSL applies them (constraints.py),
     revocation by CRL (crl.py), by the inventory and by OCSP when asked (ocsp.py);
  4. the chain file: is it complete, ordered, free of strangers (chainfile.py).
The x509-limbo harness calls :func:`verify` exactly as the CLI does.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import Protocol

from cryptography import x509

from mtlskit.verify import checks, crl, path as pathmod
from mtlskit.verify.chainfile import check_chain_file
from mtlskit.verify.constraints import check_subject_constraints
from mtlskit.verify.checks import Purpose, describe
from mtlskit.verify.findings import Finding, has_error, info


class RevocationSource(Protocol):
    """Something that knows about revocation beyond CRL files: the inventory, OCSP."""

    def __call__(self, path: list[x509.Certificate], at: dt.datetime) -> list[Finding]: ...


@dataclass(frozen=True)
class VerifyRequest:
    """What to verify; built by the CLI from files, by the limbo harness from JSON.

    Attributes:
        leaf: the certificate to check.
        anchors: trusted CA certificates (--ca).
        chain: untrusted intermediates (--chain), in file order.
        chain_given: whether a chain file was given (its completeness is then checked).
        crls: CRLs (--crl), for any CA of the path.
        purpose: client or server.
        host: for servers, the name to match.
        at: the validation time.
        max_depth: most intermediates allowed; None for the library default.
    """

    leaf: x509.Certificate
    anchors: list[x509.Certificate]
    at: dt.datetime
    chain: list[x509.Certificate] = field(default_factory=list)
    chain_given: bool = False
    crls: list[x509.CertificateRevocationList] = field(default_factory=list)
    purpose: Purpose = Purpose.CLIENT
    host: str | None = None
    max_depth: int | None = None


@dataclass(frozen=True)
class VerifyReport:
    findings: list[Finding]
    path: list[x509.Certificate] | None

    @property
    def ok(self) -> bool:
        return not has_error(self.findings)

    def to_dict(self) -> dict:
        return {"ok": self.ok, "path": [c.subject.rfc4514_string() for c in self.path or []],
                "findings": [f.to_dict() for f in self.findings]}


def verify(request: VerifyRequest, revocation: list[RevocationSource] = ()) -> VerifyReport:
    """Check ``request.leaf`` and return every finding, errors first-cause-first."""
    leaf = request.leaf
    found = checks.check_parseable(leaf)
    if found:
        return VerifyReport(found, None)
    found = checks.check_validity(leaf, request.at, purpose=request.purpose) + checks.check_purpose(leaf, request.purpose)
    found += checks.check_key(leaf)
    if request.purpose is Purpose.SERVER:
        found += checks.check_common_name(leaf)
    result = pathmod.build_path(leaf, request.chain, request.anchors, purpose=request.purpose,
                                at=request.at, host=request.host, max_depth=request.max_depth)
    if result.path is None and (not found or not _explained(request, found)):
        return VerifyReport(found + result.findings, None)
    if result.path is None:
        return VerifyReport(found, None)
    path = result.path
    found += result.findings + checks.check_structure(path) + check_subject_constraints(path)
    for cert in path[1:]:
        found += checks.check_key(cert)
    found += _revocation(request, path, revocation)
    if request.chain_given:
        found += check_chain_file(path, request.chain)
    if not has_error(found):
        found.append(info("ok", f"{describe(leaf)} is valid for TLS {request.purpose.value} authentication; "
                          f"chain: {' -> '.join(describe(c) for c in path)}"))
    return VerifyReport(found, path)


def _revocation(request: VerifyRequest, path: list[x509.Certificate],
                sources: list[RevocationSource]) -> list[Finding]:
    found: list[Finding] = []
    if request.crls:
        found += crl.check_path_crls(path, request.crls, request.at)
    for source in sources:
        found += source(path, request.at)
    covered = bool(request.crls) or any(getattr(s, "covers", lambda _: True)(path) for s in sources)
    if not covered and len(path) > 1:
        found.append(info("revocation-not-checked", "no CRL was given, so revocation was not checked",
                          "pass the CA's CRL with --crl, or --ocsp to ask the OCSP responder"))
    return found


def _explained(request: VerifyRequest, found: list[Finding]) -> bool:
    """Would the path validate but for the leaf problems already reported?

    The library reports an expired or wrong-purpose leaf as one opaque path failure;
    when the leaf's own findings explain it, adding "untrusted" would mislead.
    """
    leaf = request.leaf
    codes = {f.code for f in found}
    retry = request
    if codes & {"cert-expired", "cert-not-yet-valid"}:
        middle = leaf.not_valid_before_utc + (leaf.not_valid_after_utc - leaf.not_valid_before_utc) / 2
        retry = replace(retry, at=middle)
    if "wrong-purpose" in codes:
        retry = replace(retry, purpose=Purpose.SERVER if request.purpose is Purpose.CLIENT else Purpose.CLIENT)
    if retry is request:
        return False
    if pathmod.build_path(leaf, retry.chain, retry.anchors, purpose=retry.purpose, at=retry.at,
                          host=None, max_depth=retry.max_depth).path is not None:
        return True
    # A leaf older than its CA certificate (the CA was re-issued since) has no moment at
    # which the whole path is valid; when its signatures still lead to a trusted CA, the
    # leaf's own dates are the cause and "no valid chain" would send the user to --ca.
    return "wrong-purpose" not in codes and pathmod.signed_by_trusted(leaf, request.chain, request.anchors)
