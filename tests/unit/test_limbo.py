"""x509-limbo, the independent path-validation suite, through mtlskit's verify code path.

Every CLIENT and SERVER case is turned into a :class:`VerifyRequest` (the object the
``mtlskit verify`` command builds from its files) and run through
:func:`mtlskit.verify.verifier.verify`. A case passes when "no error finding" equals
``expected_result == "SUCCESS"``.

Skipped cases, by documented feature (never by id):
  * features ``pedantic-public-suffix-wildcard``: mtlskit carries no public suffix list;
    a private CA decides its own wildcards.
  * ``name-constraint-dn``: cryptography's verifier does not evaluate directoryName
    name constraints, nor names carried only as a directoryName SAN.
  * ``pedantic-webpki-eku``: mtlskit follows RFC 5280 4.2.1.12 (no EKU = any purpose,
    reported as a warning) instead of the Web PKI rule that EKU is mandatory.
  * ``rfc5280-incompatible-with-webpki``: where the two profiles disagree mtlskit
    follows the Web PKI (cryptography's profile).
  * a CA certificate (basicConstraints cA=TRUE) in the leaf position: mtlskit refuses
    CA certificates as client or server certificates, as the Web PKI does; RFC 5280
    allows them, and limbo holds cases for both views.
  * a self-issued intermediate (subject == issuer, signed by another key, RFC 5280 3.2
    key rollover): cryptography's path builder does not build through those.
  * ``pedantic-rfc5280``: the only case tests an anchor without AKI; mtlskit takes
    trust anchors as given (RFC 5280 6.1.1 (d)), as cve::cve-2024-0567 requires.
  * a requested EKU other than the one of the validation kind (none in the suite today).

Not skipped but expected to FAIL whatever limbo says: a leaf without a DNS SAN whose
subject CN reads as a DNS name outside the DNS name constraints of a CA on the path.
mtlskit reads that CN as a DNS name and refuses it, as OpenSSL (and so nginx, Apache and
HAProxy) does; the Web PKI suites (BetterTLS) ignore the CN and expect SUCCESS.
"""

from __future__ import annotations

import collections
import datetime as dt
import gzip
import json
import os
import warnings
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from mtlskit.pki.constraints import cn_dns_id, constraints_of, permits

from mtlskit.verify.checks import Purpose, is_ca, is_self_issued
from mtlskit.verify.verifier import VerifyRequest, verify

_REPO = Path(__file__).resolve().parents[2]
_CANDIDATES = [Path(os.environ["MTLSKIT_LIMBO"])] if os.environ.get("MTLSKIT_LIMBO") else [
    base / "shared/data/x509-limbo/limbo.json.gz" for base in (_REPO.parent, _REPO.parent.parent)]
LIMBO = next((p for p in _CANDIDATES if p.exists()), _CANDIDATES[0])

SKIPPED_FEATURES = {
    "pedantic-public-suffix-wildcard": "no public suffix list",
    "name-constraint-dn": "directoryName name constraints are not evaluated by cryptography",
    "pedantic-webpki-eku": "RFC 5280 EKU semantics (missing EKU is a warning)",
    "rfc5280-incompatible-with-webpki": "the Web PKI profile is followed where it conflicts with RFC 5280",
    "pedantic-rfc5280": "trust anchors are taken as given",
}
# When the EE is generic, limbo says nothing; only a different EKU needs a skip.
KIND_EKU = {"CLIENT": {"clientAuth"}, "SERVER": {"serverAuth"}}


def _load(pems: list[str]) -> list[x509.Certificate]:
    return [x509.load_pem_x509_certificate(p.encode()) for p in pems]


def skip_reason(case: dict, leaf: x509.Certificate, intermediates: list[x509.Certificate]) -> str | None:
    """The documented unsupported feature a case exercises, or None to run it."""
    for feature in case["features"]:
        if feature in SKIPPED_FEATURES:
            return f"feature {feature}: {SKIPPED_FEATURES[feature]}"
    if case["extended_key_usage"] and set(case["extended_key_usage"]) != KIND_EKU[case["validation_kind"]]:
        return "EKU other than the validation kind's"
    if is_ca(leaf):
        return "CA certificate in the leaf position"
    if any(is_self_issued(c) and not _self_signed(c) for c in intermediates):
        return "self-issued (key rollover) intermediate"
    return None


def _cn_under_dns_constraints(leaf: x509.Certificate, cas: list[x509.Certificate]) -> bool:
    if any(isinstance(n, x509.DNSName) for n in _sans_or_none(leaf)):
        return False
    hosts = [cn_dns_id(str(a.value)) for a in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return any(not permits(constraint, x509.DNSName(host))
               for constraint in constraints_of(cas) for host in hosts if host)


def _sans_or_none(cert: x509.Certificate) -> list[x509.GeneralName]:
    try:
        return list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except (x509.ExtensionNotFound, x509.DuplicateExtension, ValueError, TypeError):
        return []


def _self_signed(cert: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(cert)
        return True
    except Exception:
        return False


def request_for(case: dict, leaf: x509.Certificate, intermediates: list[x509.Certificate]) -> VerifyRequest:
    """The request ``mtlskit verify`` would build for this case's files."""
    at = dt.datetime.fromisoformat(case["validation_time"]) if case["validation_time"] else dt.datetime.now(dt.timezone.utc)
    peer = case.get("expected_peer_name")
    return VerifyRequest(
        leaf=leaf, anchors=_load(case["trusted_certs"]), chain=intermediates, at=at,
        crls=[x509.load_pem_x509_crl(c.encode()) for c in case.get("crls", [])],
        purpose=Purpose.CLIENT if case["validation_kind"] == "CLIENT" else Purpose.SERVER,
        host=peer["value"] if peer else None, max_depth=case["max_chain_depth"],
    )


def run_case(case: dict, honour_skips: bool = True) -> tuple[str, str | None]:
    """('pass'|'fail'|'skip', detail); with ``honour_skips=False`` skipped cases run too."""
    cn_refused = False  # OpenSSL's reading of the CN refuses it (see the module's docstring)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # negative serials etc. parse with a deprecation warning
            leaf = x509.load_pem_x509_certificate(case["peer_certificate"].encode())
            intermediates = _load(case["untrusted_intermediates"])
            reason = skip_reason(case, leaf, intermediates)
            if reason and honour_skips:
                return "skip", reason
            cn_refused = _cn_under_dns_constraints(leaf, intermediates + _load(case["trusted_certs"]))
            report = verify(request_for(case, leaf, intermediates))
    except ValueError as exc:  # unparseable input: mtlskit verify refuses it (exit 2)
        got_ok, detail = False, f"unparseable: {exc}"
    else:
        got_ok = report.ok
        detail = "; ".join(f"{f.code}: {f.message}" for f in report.findings if f.level.value == "error")
    expected_ok = case["expected_result"] == "SUCCESS" and not cn_refused
    return ("pass" if got_ok == expected_ok else "fail"), detail


@pytest.fixture(scope="module")
def limbo_cases() -> list[dict]:
    if not LIMBO.exists():  # part of make test: missing data is a failure, not a skip
        pytest.fail(f"x509-limbo not found at {LIMBO}; set MTLSKIT_LIMBO to limbo.json.gz")
    with gzip.open(LIMBO, "rt", encoding="utf-8") as fh:
        data = json.load(fh)
    return [c for c in data["testcases"] if c["validation_kind"] in ("CLIENT", "SERVER")]


def test_limbo_suite(limbo_cases, capsys):
    counts: collections.Counter[str] = collections.Counter()
    skipped: collections.Counter[str] = collections.Counter()
    failures = []
    for case in limbo_cases:
        outcome, detail = run_case(case)
        counts[outcome] += 1
        if outcome == "skip":
            would = run_case(case, honour_skips=False)[0]  # reported, never asserted
            skipped[(detail, would)] += 1
        elif outcome == "fail":
            failures.append(f"{case['id']} expected {case['expected_result']}: {detail or 'no error'}")
    with capsys.disabled():
        print(f"\nx509-limbo: {len(limbo_cases)} cases, passed {counts['pass']}, failed {counts['fail']}, "
              f"skipped {counts['skip']}")
        for (reason, would), n in sorted(skipped.items()):
            print(f"  skipped {n} ({'would agree' if would == 'pass' else 'would disagree'} if run): {reason}")
    assert not failures, "\n".join(failures)
    assert counts["pass"] > 9000


def test_limbo_crl_cases_all_run_and_pass(limbo_cases):
    crl_cases = [c for c in limbo_cases if "has-crl" in c["features"]]
    assert len(crl_cases) == 8
    assert [run_case(c)[0] for c in crl_cases] == ["pass"] * 8

