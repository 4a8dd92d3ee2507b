"""Revocation by CRL for every certificate of a validated path (RFC 5280 6.3).

cryptography's verifier does no revocation checking at all; this module does the
part mTLS servers do (nginx ``ssl_crl``, Apache ``SSLCARevocationFile``, HAProxy
``crl-file``): for each certificate below the trust anchor, find the CRLs its issuer
signed, check each CRL, and look the serial number up. Pure: CRL objects in,
findings out.

Not supported (reported as a warning, never silently ignored): delta CRLs, indirect
CRLs and CRLs partitioned by reason (``onlySomeReasons``).
"""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.x509.oid import ExtensionOID

from mtlskit.verify.checks import describe, is_ca, reason_note
from mtlskit.verify.findings import Finding, error, warning

_FIX_CRL = "publish a fresh CRL (mtlskit crl) and install it where the server reads it"
# Servers refuse every client once their CRL is past nextUpdate; a day's notice leaves
# time to act (issue 10, "no silent lockout").
EXPIRING_WITHIN = dt.timedelta(days=1)
KEEP_FRESH = ("keep it fresh: run `mtlskit serve` (it re-signs each CRL at half its lifetime), or run "
              "`mtlskit crl` daily from cron (it also rewrites the CRL of every deployment made by `mtlskit deploy`)")


def check_path_crls(path: list[x509.Certificate], crls: list[x509.CertificateRevocationList],
                    at: dt.datetime) -> list[Finding]:
    """Check every certificate of ``path`` (leaf first, anchor last) but the anchor.

    A CA in the path for which no CRL was given gives a ``crl-missing`` warning: the
    certificates it issued were not checked, which may be intended (for example, a
    root that never revokes its intermediate).
    """
    found: list[Finding] = []
    for cert, issuer in zip(path, path[1:]):
        mine = [crl for crl in crls if crl.issuer == issuer.subject]
        if not mine:
            found.append(warning("crl-missing", f"no CRL from {describe(issuer)} was given, so the revocation "
                                 f"of {describe(cert)} was not checked", "pass that CA's CRL with --crl"))
            continue
        judged = [(crl, check_crl(crl, issuer, at)) for crl in mine]
        usable = [crl for crl, problems in judged if not problems]
        if not usable:  # report the newest CRL's problems; older ones are expected to be stale
            found += max(judged, key=lambda pair: pair[0].last_update_utc)[1]
        for crl in usable:
            found += _lookup(crl, cert, at)
        if usable:
            found += check_freshness(max(usable, key=lambda c: c.last_update_utc), describe(issuer), at)
    return found


def check_crl(crl: x509.CertificateRevocationList, issuer: x509.Certificate,
              at: dt.datetime) -> list[Finding]:
    """Is ``crl`` a usable CRL of ``issuer`` at time ``at``? Returns the reasons it is not."""
    who = describe(issuer)
    if not crl.is_signature_valid(issuer.public_key()):
        return [error("crl-bad-signature", f"the CRL for {who} is not signed by that CA's key",
                      "use the CRL published by this CA, not one from another CA with the same name")]
    try:
        ku = issuer.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        ku = None
    if ku is not None and not ku.crl_sign:
        # RFC 5280 6.3.3 (f): a key usage extension present in the CRL issuer's certificate must assert cRLSign.
        return [error("crl-issuer-not-allowed", f"{who} signed a CRL but its key usage does not include cRLSign",
                      "reissue the CA certificate with the cRLSign key usage")]
    return _check_extensions(crl, who) or _check_time(crl, who, at)


def _check_extensions(crl: x509.CertificateRevocationList, who: str) -> list[Finding]:
    exts = {ext.oid: ext for ext in crl.extensions}
    number = exts.get(ExtensionOID.CRL_NUMBER)
    if number is None:
        return [error("crl-invalid", f"the CRL for {who} has no CRL number (RFC 5280 5.2.3 requires one)", _FIX_CRL)]
    if number.critical:
        return [error("crl-invalid", f"the CRL for {who} marks its CRL number critical (RFC 5280 5.2.3 forbids it)",
                      _FIX_CRL)]
    if ExtensionOID.DELTA_CRL_INDICATOR in exts:
        return [warning("crl-unsupported", f"the CRL for {who} is a delta CRL, which is not supported",
                        "pass the complete CRL")]
    idp = exts.get(ExtensionOID.ISSUING_DISTRIBUTION_POINT)
    if idp is not None and (idp.value.indirect_crl or idp.value.only_some_reasons):
        return [warning("crl-unsupported", f"the CRL for {who} is indirect or covers only some reasons, "
                        "which is not supported", "pass the CA's complete CRL")]
    return []


def _check_time(crl: x509.CertificateRevocationList, who: str, at: dt.datetime) -> list[Finding]:
    if crl.last_update_utc > at:
        return [error("crl-not-yet-valid", f"the CRL for {who} is dated {crl.last_update_utc:%Y-%m-%d %H:%M} UTC, "
                      "after the time of the check", "check the clocks of the CA and of this machine")]
    if crl.next_update_utc is not None and crl.next_update_utc < at:
        # Servers refuse every client once their CRL is past nextUpdate (OpenSSL X509_V_ERR_CRL_HAS_EXPIRED).
        return [error("crl-expired", f"the CRL for {who} expired on {crl.next_update_utc:%Y-%m-%d %H:%M} UTC",
                      _FIX_CRL)]
    return []


def check_published(crl: x509.CertificateRevocationList, who: str, at: dt.datetime, where: str) -> list[Finding]:
    """Dates of a CRL that servers read (a deployment's crl.pem, the CA home's current CRL):
    expired or not yet valid (errors: servers refuse every client), or expiring soon."""
    return _check_time(crl, f"{who}{where}", at) or check_freshness(crl, who, at, where)


def check_freshness(crl: x509.CertificateRevocationList, who: str, at: dt.datetime,
                    where: str = "") -> list[Finding]:
    """A warning when a CRL still valid at ``at`` expires within :data:`EXPIRING_WITHIN`.

    ``who`` names the CA; ``where`` the copy (" in /etc/nginx/mtls/crl.pem") when it matters.
    """
    next_update = crl.next_update_utc
    if next_update is None or next_update < at or next_update - at > EXPIRING_WITHIN:
        return []
    left = next_update - at
    hours = int(left.total_seconds() // 3600)
    return [warning("crl-expiring", f"the CRL for {who}{where} expires on "
                    f"{next_update:%Y-%m-%d %H:%M} UTC, in {hours} h {int(left.total_seconds() // 60) % 60} min; "
                    "after that servers that check it refuse every client", KEEP_FRESH)]


def _in_scope(crl: x509.CertificateRevocationList, cert: x509.Certificate) -> bool:
    try:
        idp = crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint).value
    except x509.ExtensionNotFound:
        return True
    return not ((idp.only_contains_user_certs and is_ca(cert)) or (idp.only_contains_ca_certs and not is_ca(cert)))


def _lookup(crl: x509.CertificateRevocationList, cert: x509.Certificate, at: dt.datetime) -> list[Finding]:
    if not _in_scope(crl, cert):
        return []
    entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
    if entry is None or entry.revocation_date_utc > at:
        return []
    reason = _reason(entry)
    if reason is x509.ReasonFlags.remove_from_crl:  # RFC 5280 5.3.1: only meaningful in delta CRLs
        return []
    why = reason_note(reason)
    hold = reason is x509.ReasonFlags.certificate_hold
    return [error("revoked", f"{describe(cert)} (serial {cert.serial_number:X}) was "
                  f"{'put on hold' if hold else 'revoked'} on {entry.revocation_date_utc:%Y-%m-%d %H:%M} UTC{why}",
                  "issue a new certificate; a revoked one cannot be used again")]


def _reason(entry: x509.RevokedCertificate) -> x509.ReasonFlags | None:
    try:
        return entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        return None
