"""What each page of the web UI shows, built from the inventory (sync: run in a thread).

Reads: :mod:`mtlskit.store.certificate_search`, :mod:`mtlskit.store.browse`. Writes: the CLI's
workflows, as the session's user.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import Mapping
from urllib.parse import urlencode

from cryptography import x509

from mtlskit.audit_actor import acting_as
from mtlskit.errors import BadInput
from mtlskit.store import browse, certificate_search
from mtlskit.store.inventory import Status

REASONS = ("unspecified", "key-compromise", "affiliation-changed", "superseded", "cessation-of-operation",
           "privilege-withdrawn")
STATUSES = tuple(s.value for s in Status)
PROFILES = ("server", "client", "peer", "ocsp")
KEY_TYPES = ("ec-p256", "rsa-2048", "rsa-3072", "ec-p384")
FORMATS = {"p12-modern": "PKCS#12, modern (AES-256, SHA-256 MAC)",
           "p12-legacy": "PKCS#12, legacy (3DES, SHA-1 MAC: iOS, macOS, older Windows)",
           "mobileconfig": "Apple .mobileconfig (legacy PKCS#12 + the root)"}
ISSUE_CHOICES = {"key_types": KEY_TYPES, "formats": FORMATS}
MIN_PASSWORD = 8
PAGE_SIZE = 50
EXPIRING = ("7", "30", "90")   # days offered by the "expiring within" filter
TIMELINE_WEEKS = 26
_SERIAL = re.compile(r"[0-9a-f]{1,40}\Z")


def certificate_list(service, params: Mapping[str, str]) -> dict:
    """The certificates page: filters from the query string, one keyset page."""
    query = certificate_search.PageQuery(
        search=params.get("q", "").strip()[:200], status=_one_of(params.get("status", ""), STATUSES),
        profile=_one_of(params.get("profile", ""), PROFILES), descending=params.get("sort") == "-expiry",
        expiring_days=int(params["expiring"]) if params.get("expiring") in EXPIRING else None,
        after=_int(params.get("after")), before=_int(params.get("before")), size=PAGE_SIZE)
    now = service.clock.now()
    page = certificate_search.certificate_page(service.inventory.db, now, query)
    filters = {k: v for k, v in (("q", query.search), ("status", query.status), ("profile", query.profile),
                                 ("expiring", str(query.expiring_days or "")),
                                 ("sort", "-expiry" if query.descending else "")) if v}
    rows = [_row(record, now) for _, record in page.rows]
    going_back = query.before is not None
    has_next = bool(page.rows) and (page.has_more if not going_back else True)
    has_prev = bool(page.rows) and (page.has_more if going_back else query.after is not None)
    return {"rows": rows, "total": page.total, "filters": filters, "query": query,
            "statuses": STATUSES, "profiles": PROFILES, "count_cap": certificate_search.COUNT_CAP,
            "expiring": EXPIRING,
            "next_url": _url(filters, after=page.rows[-1][0]) if has_next else None,
            "prev_url": _url(filters, before=page.rows[0][0]) if has_prev else None,
            "sort_url": _url({**filters, "sort": "" if query.descending else "-expiry"})}


def _row(record, now: dt.datetime) -> dict:
    return {"name": record.name, "serial": record.serial_hex, "issuer": record.issuer, "profile": record.profile,
            "status": record.status_at(now).value, "not_after": record.not_after,
            "days_left": (record.not_after - now).days, "sans": record.sans,
            "url": f"/ui/certificates/{record.issuer}/{record.serial_hex}"}


def _url(filters: Mapping[str, str], **cursor) -> str:
    return "/ui/certificates?" + urlencode({k: v for k, v in {**filters, **cursor}.items() if v not in ("", None)})


def _one_of(value: str, allowed) -> str:
    return value if value in allowed else ""


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() and len(value) < 19 else None


def certificate_detail(service, issuer: str, serial: str) -> dict | None:
    """The detail page of one certificate, or None when there is none."""
    if not _SERIAL.match(serial) or len(issuer) > 64:
        return None
    db = service.inventory.db
    record = browse.certificate(db, issuer, serial)
    if record is None:
        return None
    now = service.clock.now()
    return {"record": record, "status": record.status_at(now).value, "days_left": (record.not_after - now).days,
            "chain": _chain(record, service.ca_certificates()), "history": browse.history(db, issuer, serial)}


def _chain(record, cas: Mapping[str, x509.Certificate]) -> list[dict]:
    """The leaf, then each CA up to the root (by subject, as a path builder would)."""
    leaf = x509.load_pem_x509_certificate(record.pem.encode())
    shown = [_link(record.name, leaf)]
    by_subject = {c.subject: (name, c) for name, c in cas.items()}
    current = leaf
    for _ in range(len(cas)):
        found = by_subject.get(current.issuer)
        if found is None or found[1] == current:
            break
        shown.append(_link(found[0], found[1]))
        current = found[1]
    return shown


def _link(name: str, certificate: x509.Certificate) -> dict:
    return {"name": name, "subject": certificate.subject.rfc4514_string(),
            "issuer": certificate.issuer.rfc4514_string(), "not_after": certificate.not_valid_after_utc}


def revoke_one(ui, session, record, reason: str):
    """Revoke one certificate with the CLI's workflow, as the session's user; this worker's
    OCSP answers say "revoked" from the next request on."""
    from mtlskit.revoke.revoker import revoke

    with acting_as(session.principal.audit_by):
        result = revoke(ui.service, ui.authority, [f"serial:{record.serial_hex}"], reason)
    ui.source.invalidate((r.issuer, r.serial) for r in result.revoked)
    return result


@dataclasses.dataclass(frozen=True)
class Download:
    data: bytes = dataclasses.field(repr=False)
    media_type: str
    filename: str


def issue_download(ui, session, form: Mapping[str, str]) -> Download:
    """Issue a client certificate from the issue form and bundle it for download.

    Raises:
        BadInput: passwords missing, short or different; a bad field.
        PolicyViolation, AlreadyExists: from the issuance workflow.
    """
    from mtlskit.issue.identity import issue_identity
    from mtlskit.issue.issuer import IssueRequest, SanRequest
    from mtlskit.issue.profiles import PROFILES as SPECS
    from mtlskit.issue.subject import defaults_of
    from mtlskit.pki.keys import KeyType

    password, kind = _password(form), form.get("format", "")
    if kind not in FORMATS:
        raise BadInput("pick a download format")
    if form.get("key_type") not in KEY_TYPES:
        raise BadInput("pick a key type")
    days = form.get("days", "").strip()
    if days and not days.isdigit():
        raise BadInput("the lifetime is a number of days")
    email = form.get("email", "").strip()
    request = IssueRequest(SPECS["client"], form.get("name", "").strip(),
                           SanRequest(email=(email,) if email else ()),
                           defaults_of(ui.service.settings), int(days) if days else None)
    with acting_as(session.principal.audit_by):
        identity = issue_identity(ui.service, ui.authority, request, KeyType.parse(form["key_type"]))
    return _bundle(identity, kind, password)


def _password(form: Mapping[str, str]) -> bytes:
    password = form.get("password", "")
    if len(password) < MIN_PASSWORD:
        raise BadInput(f"the bundle password needs at least {MIN_PASSWORD} characters")
    if password != form.get("password2", ""):
        raise BadInput("the two passwords differ")
    return password.encode()


def _bundle(identity, kind: str, password: bytes) -> Download:
    from mtlskit.pki.pkcs12 import P12Profile, build_pkcs12

    name = identity.record.name
    file_stem = file_stem_of(name)
    if kind == "mobileconfig":
        from mtlskit.issue.mobileconfig import MEDIA_TYPE, build_mobileconfig

        data = build_mobileconfig(name, identity.leaf_key, identity.certificate, identity.chain,
                                  identity.root, password)
        return Download(data, MEDIA_TYPE, f"{file_stem}.mobileconfig")
    profile = P12Profile.LEGACY if kind == "p12-legacy" else P12Profile.MODERN
    data = build_pkcs12(name, identity.leaf_key, identity.certificate, identity.chain, password, profile)
    return Download(data, "application/x-pkcs12", f"{file_stem}-{profile.value}.p12")


def file_stem_of(name: str) -> str:
    """A NAME as a download file name: what cannot break the Content-Disposition quoting."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:100].lstrip(".") or "certificate"


def timeline(service) -> dict:
    """The expiry timeline: live certificates expiring per week over the next half year."""
    from mtlskit.ui.chart import svg, weekly

    now = service.clock.now()
    start = dt.datetime.combine(now.date(), dt.time(), tzinfo=dt.timezone.utc)
    end = start + dt.timedelta(weeks=TIMELINE_WEEKS)
    db = service.inventory.db
    buckets = weekly(browse.expiry_days(db, start, end), start.date(), TIMELINE_WEEKS)
    named = []
    for bucket in buckets:
        if bucket.count:
            begin = dt.datetime.combine(bucket.start, dt.time(), tzinfo=dt.timezone.utc)
            bucket = dataclasses.replace(bucket, names=tuple(
                browse.soonest_names(db, max(begin, start), begin + dt.timedelta(weeks=1), 3)))
        named.append(bucket)
    return {"chart": svg(named), "buckets": named, "total": sum(b.count for b in named), "weeks": TIMELINE_WEEKS}


def revocation_status(service, source) -> dict:
    """CRL state per CA and the OCSP responders this worker signs with."""
    db = service.inventory.db
    now = service.clock.now()
    crls = browse.crl_states(db)
    for crl in crls:
        crl["stale"] = crl["next_update"] is not None and crl["next_update"] <= now
        crl["pending"] = (crl["published_number"] or 0) < (crl["crl_number"] or 0)
    responders = [{"ca": name, "subject": served.responder.certificate.subject.rfc4514_string(),
                   "not_after": served.responder.certificate.not_valid_after_utc}
                  for name, served in sorted(source.cas.items())]
    return {"crls": crls, "revoked": browse.revoked_counts(db), "responders": responders, "now": now}


def deployment_list(service) -> dict:
    return {"deployments": browse.deployments(service.inventory.db)}
