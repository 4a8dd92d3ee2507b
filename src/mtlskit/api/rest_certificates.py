"""Certificate routes of the REST API: list/search and show (``read``), issue, sign a CSR
and renew (``issue``). Each calls the workflow of the matching command."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from mtlskit.api import rest_models as models
from mtlskit.api.rest import InvalidRequest, json_schema_body, parse_body, requires, run_as
from mtlskit.store.inventory import Status

MAX_PAGE = 1000
DEFAULT_PAGE = 100
SEARCH_PARAMETERS = ("name", "status", "profile", "issuer", "expiring", "limit", "cursor")
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}  # a private key crosses: no cache keeps it
ISSUE_EXAMPLE = '{"profile": "client", "name": "alice"}'
SIGN_EXAMPLE = '{"profile": "server", "csr": "-----BEGIN CERTIFICATE REQUEST-----..."}'


def _query(name: str, description: str, schema: dict | None = None) -> dict:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema or {"type": "string"}}


SEARCH_DOCUMENTED = {"parameters": [
    _query("name", "a NAME, or a prefix of NAMEs ending with *"),
    _query("status", "valid, not-yet-valid, expired or revoked", {"type": "string", "enum": [s.value for s in Status]}),
    _query("profile", "server, client, peer, ocsp, ..."),
    _query("issuer", "the issuing CA's name"),
    _query("expiring", "valid ones expiring within this, e.g. 30d, 12h, 2w"),
    _query("limit", f"page size, 1 to {MAX_PAGE}", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE,
                                                   "default": DEFAULT_PAGE}),
    _query("cursor", "next_cursor of the previous page"),
]}


def add_routes(routes: APIRouter, api) -> None:
    @routes.get("/certificates", openapi_extra=SEARCH_DOCUMENTED,
                responses={422: {"description": "a bad filter or cursor"}})
    async def list_certificates(request: Request, _caller=Depends(requires(api, "read"))) -> JSONResponse:
        """List/search the inventory, soonest expiry first, a page at a time.

        Query: ``name`` (a NAME, or a prefix ending with ``*``), ``status`` (valid,
        not-yet-valid, expired, revoked), ``profile``, ``issuer``, ``expiring`` (valid ones
        expiring within, e.g. ``30d``, ``12h``), ``limit`` (1-1000, default 100), ``cursor``
        (``next_cursor`` of the previous page)."""
        from mtlskit.store.certificate_search import search_certificates

        now = api.service.clock.now()
        search = search_of(dict(request.query_params.multi_items()), list(request.query_params.keys()), now)
        page = await run_in_threadpool(search_certificates, api.service.inventory.db, now, search)
        return JSONResponse({"items": [json_ready(r.summary(now)) for r in page.records], "total": page.total,
                             "next_cursor": encode_cursor(page.next_after) if page.next_after else None})

    @routes.get("/certificates/{serial_or_name}",
                responses={400: {"description": "serial: followed by something not hex"},
                           404: {"description": "no such certificate"},
                           409: {"description": "a bare target that is both a NAME and a serial"}})
    async def certificate(serial_or_name: str, _caller=Depends(requires(api, "read"))) -> JSONResponse:
        """The inventory records of a NAME or SERIAL (or name:NAME, serial:HEX), as
        `mtlskit show --json` prints them, with their PEM."""
        records = await run_in_threadpool(api.service.inventory.find, serial_or_name)
        now = api.service.clock.now()
        return JSONResponse([certificate_json(r, now) for r in records])

    @routes.post("/certificates", status_code=201, openapi_extra=json_schema_body(models.IssueRequest),
                 responses={400: {"description": "a NAME, SAN, subject field, key type or lifetime the CLI refuses"},
                            403: {"description": "a role below issue, or refused by policy (name constraints)"},
                            422: {"description": "a body of the wrong shape"}})
    async def issue(request: Request, caller=Depends(requires(api, "issue"))) -> JSONResponse:
        """Issue a certificate with a new key (as `mtlskit issue`). The key is in this answer
        only (PEM, or inside the PKCS#12 bundle when ``pkcs12`` is given): the CA keeps none."""
        from mtlskit.api.handover import issue_handed_over

        wanted = parse_body(models.IssueRequest, request.headers.get("content-type"), await request.body(),
                            ISSUE_EXAMPLE)
        record, key = await run_as(caller, issue_handed_over, api.service, api.authority, wanted)
        return JSONResponse(issued_json(api, record) | key, status_code=201, headers=NO_STORE)

    @routes.post("/sign", status_code=201, openapi_extra=json_schema_body(models.SignRequest),
                 responses={400: {"description": "not a CSR, a bad signature, names the CLI refuses"},
                            422: {"description": "a body of the wrong shape"}})
    async def sign(request: Request, caller=Depends(requires(api, "issue"))) -> JSONResponse:
        """Sign a CSR under a profile (as `mtlskit sign`): the CSR gives the key and names,
        never its own usage or CA flag."""
        wanted = parse_body(models.SignRequest, request.headers.get("content-type"), await request.body(),
                            SIGN_EXAMPLE)
        certificate, record, dropped = await run_as(caller, _sign, api.service, api.authority, wanted)
        return JSONResponse(issued_json(api, record) | {"dropped_subject_fields": dropped}, status_code=201)

    @routes.post("/certificates/{target}/renew", status_code=201, openapi_extra=json_schema_body(models.RenewRequest),
                 responses={403: {"description": "revoked, expired, already renewed, or a CA certificate"},
                            404: {"description": "no such certificate"},
                            409: {"description": "a NAME with several live certificates"},
                            422: {"description": "a body of the wrong shape"}})
    async def renew(target: str, request: Request, caller=Depends(requires(api, "issue"))) -> JSONResponse:
        """Renew a certificate (its successor copies subject, SANs, profile and lifetime):
        with ``csr``, for the CSR's new key; with ``new_key``, for a new key handed over in
        this answer only; else as `mtlskit renew NAME` (new files where its files were
        written, or into the deployments `deploy` made of it)."""
        wanted = parse_body(models.RenewRequest, request.headers.get("content-type"), await request.body(), "{}")
        if (wanted.csr is not None) + wanted.new_key + wanted.revoke_old > 1:
            raise InvalidRequest("csr, new_key and revoke_old are three ways to renew: give one",
                                 hint="to retire the old one after a csr or new_key renewal, revoke it through "
                                      "/revocations")
        record, result = await run_as(caller, _renew, api.service, api.authority, target, wanted)
        headers = NO_STORE if "private_key" in result else None
        return JSONResponse(result | {"certificate": issued_json(api, record)}, status_code=201, headers=headers)


def _sign(service, authority, wanted: models.SignRequest):
    from mtlskit.issue.csr import sign_csr
    from mtlskit.issue.lifetime import requested_lifetime
    from mtlskit.issue.profiles import get_profile
    from mtlskit.issue.subject import SubjectOptions, defaults_of

    profile = get_profile(wanted.profile)
    requested_lifetime(profile, wanted.days, wanted.hours)
    typed = SubjectOptions.parse(**wanted.subject.model_dump())
    dropped: list[str] = []
    certificate, record = sign_csr(service, authority, wanted.csr.encode("ascii", "replace"), profile, wanted.days,
                                   wanted.name, hours=wanted.hours, subject=typed,
                                   defaults=defaults_of(service.settings), dropped=dropped)
    return certificate, record, dropped


def _renew(service, authority, target: str, wanted: models.RenewRequest) -> tuple:
    from mtlskit.lifecycle.renew import renew_certificates, resolve

    old = resolve(service.inventory, target, service.clock.now())
    if wanted.csr is not None:
        from mtlskit.lifecycle.remote_renewal import renew_for_csr

        new = renew_for_csr(service, authority, old, wanted.csr.encode("ascii", "replace"))
        return new, {"renewed": old.serial_hex, "directory": None, "deployments": []}
    if wanted.new_key:
        from mtlskit.lifecycle.renew import sign_renewal
        from mtlskit.pki.keys import KeyType, generate_private_key, private_key_pem

        key = generate_private_key(KeyType(old.key_type))
        new = sign_renewal(service, authority, old, key.public_key())
        return new, {"renewed": old.serial_hex, "directory": None, "deployments": [],
                     "private_key": private_key_pem(key).decode("ascii")}
    [renewal] = renew_certificates(service, authority, [old], revoke_old=wanted.revoke_old)
    return renewal.new, {"renewed": old.serial_hex, "directory": renewal.directory,
                         "deployments": list(renewal.deployments)}


def issued_json(api, record) -> dict:
    """A new certificate: its summary, PEM, chain (issuing CA first) and root."""
    from cryptography.hazmat.primitives import serialization

    pem = serialization.Encoding.PEM
    authority = api.authority
    return {"name": record.name, "serial": record.serial_hex, "issuer": record.issuer, "profile": record.profile,
            "not_before": record.not_before.isoformat(), "not_after": record.not_after.isoformat(),
            "certificate": record.pem,
            "chain": b"".join(c.public_bytes(pem) for c in authority.chain).decode("ascii"),
            "ca": authority.root.certificate.public_bytes(pem).decode("ascii")}


def search_of(query: dict[str, str], keys: list[str], now: dt.datetime):
    """The Search a query string asks for.

    Raises:
        InvalidRequest: an unknown or repeated parameter, a bad value (422).
    """
    from mtlskit.store.certificate_search import Filters, Search

    unknown = sorted(set(keys) - set(SEARCH_PARAMETERS))
    if unknown:
        raise InvalidRequest(f"unknown query parameter(s): {', '.join(k[:40] for k in unknown[:5])}",
                             hint=f"known: {', '.join(SEARCH_PARAMETERS)}")
    if len(keys) != len(set(keys)):
        raise InvalidRequest("a query parameter is given twice")
    status = _status(query["status"]) if "status" in query else None
    expiring = now + _duration(query["expiring"]) if "expiring" in query else None
    limit = _limit(query.get("limit"))
    after = decode_cursor(query["cursor"]) if "cursor" in query else None
    name = query.get("name") or None
    prefix = name[:-1] if name is not None and name.endswith("*") else None   # NAME*: a prefix
    filters = Filters(name=None if prefix is not None else name, prefix=prefix, status=status,
                      profile=query.get("profile") or None, issuer=query.get("issuer") or None,
                      expiring_before=expiring)
    return Search(filters, after=after, limit=limit)


def _status(text: str) -> Status:
    try:
        return Status(text)
    except ValueError:
        raise InvalidRequest(f"unknown status {text[:40]!r}",
                             hint=f"one of: {', '.join(s.value for s in Status)}") from None


def _duration(text: str) -> dt.timedelta:
    from mtlskit.cli.common import parse_duration  # the grammar of `list --expiring`
    from mtlskit.errors import BadInput

    try:
        return parse_duration(text)
    except BadInput as exc:
        raise InvalidRequest(f"expiring: {exc.message}", hint=exc.hint) from None


def _limit(text: str | None) -> int:
    if text is None:
        return DEFAULT_PAGE
    if not (text.isascii() and text.isdigit() and 1 <= int(text) <= MAX_PAGE):
        raise InvalidRequest(f"limit must be a number from 1 to {MAX_PAGE}")
    return int(text)


def encode_cursor(after: tuple[dt.datetime, int]) -> str:
    raw = json.dumps([after[0].isoformat(), after[1]]).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(text: str) -> tuple[dt.datetime, int]:
    """Raises InvalidRequest unless ``text`` is a cursor this API handed out."""
    try:
        raw = base64.urlsafe_b64decode(text.encode("ascii") + b"=" * (-len(text) % 4))
        when, row_id = json.loads(raw)
        after = dt.datetime.fromisoformat(when), int(row_id)
        if after[0].tzinfo is None or type(row_id) is not int:
            raise ValueError
        return after
    except (ValueError, TypeError, UnicodeError, binascii.Error, RecursionError):
        raise InvalidRequest("cursor: not a cursor of this API", hint="pass next_cursor of the previous page") from None


def certificate_json(record, now: dt.datetime) -> dict:
    """One inventory record in the shape of `mtlskit show --json`, with its PEM."""
    return json_ready(record.summary(now)) | {"pem": record.pem}


def json_ready(summary: dict) -> dict:
    return {key: value.isoformat() if isinstance(value, dt.datetime) else value for key, value in summary.items()}
