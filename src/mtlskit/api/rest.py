"""The REST API of `mtlskit serve --api`: revoke through the running service.

An adapter, nothing more: ``POST /api/v1/revocations`` calls the same workflow as
`mtlskit revoke` (:func:`mtlskit.revoke.revoker.revoke`), then drops this worker's OCSP
cache entries of the revoked certificates, so that the very next OCSP answer of this
process says "revoked". With ``--workers N`` the other workers learn of the revocation
through the change marker every OCSP source polls (its audit events), within
``--ocsp-refresh-seconds``; their caches are never stale for longer than that.

Every route needs ``Authorization: Bearer <token>`` (the token of ``HOME/api-token``,
see :mod:`mtlskit.api.token`); errors are ``application/problem+json`` mapped by
:mod:`mtlskit.api.problems`. Without ``--api`` none of these routes exist (404).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Optional

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from mtlskit.api.token import bearer_matches
from mtlskit.errors import BadInput
from mtlskit.publish.crl import crl_number_of
from mtlskit.revoke.reasons import RevocationReason
from mtlskit.revoke.revoker import RevokeResult, revoke

PREFIX = "/api/v1"
OPENAPI_PATH = PREFIX + "/openapi.json"
MAX_JSON_OCTETS = 64 * 1024  # the server refuses larger bodies anyway (api.server.MAX_BODY)
MAX_TARGETS = 10_000


@dataclasses.dataclass
class RestApi:
    """What the REST routes need: the worker's service, the loaded CA, the token."""

    service: object
    authority: object
    token: str = dataclasses.field(repr=False)


class RevokeRequest(BaseModel):
    """Body of ``POST /api/v1/revocations``."""

    model_config = ConfigDict(extra="forbid")

    targets: list[str] = Field(min_length=1, max_length=MAX_TARGETS,
                               description="SERIAL (hex) or NAME of each certificate, or serial:HEX / "
                                           "name:NAME (a bare one that is both is refused); one transaction for all")
    reason: str = Field(RevocationReason.UNSPECIFIED.value,
                        description=f"one of: {', '.join(r.value for r in RevocationReason)}")
    at: Optional[dt.datetime] = Field(None, description="revocation date, ISO 8601 (default: now; naive is UTC)")


class RevokedCertificate(BaseModel):
    serial: str
    issuer: str
    name: str
    revoked_at: dt.datetime
    reason: str


class DeploymentRefresh(BaseModel):
    server: str
    directory: str
    status: str
    message: str


class RevokeResponse(BaseModel):
    revoked: list[RevokedCertificate]
    crl_numbers: dict[str, int] = Field(description="the CRL number just signed, by CA name")
    deployments: list[DeploymentRefresh]


_bearer = HTTPBearer(auto_error=False, description="the token stored in HOME/api-token")


def router(api: RestApi, source) -> APIRouter:
    """The /api/v1 routes; ``source`` is this worker's OcspSource."""

    async def authenticated(request: Request, _scheme=Depends(_bearer)) -> None:
        # RFC 6750 §3: a missing or wrong token is 401 with a WWW-Authenticate challenge.
        if not bearer_matches(request.headers.get("authorization"), api.token):
            raise StarletteHTTPException(401, "a valid bearer token is required (see HOME/api-token)",
                                         headers={"WWW-Authenticate": 'Bearer realm="mtlskit"'})

    routes = APIRouter(prefix=PREFIX, dependencies=[Depends(authenticated)])

    @routes.post("/revocations", status_code=201, response_model=RevokeResponse,
                 openapi_extra={"requestBody": {"required": True, "content": {
                     "application/json": {"schema": RevokeRequest.model_json_schema()}}}},
                 responses={400: {"description": "bad JSON, reason, date or target"},
                            401: {"description": "missing or wrong bearer token"},
                            404: {"description": "no such certificate"},
                            409: {"description": "already revoked, a name with several valid certificates, "
                                                 "or a bare target that is both a NAME and a serial"},
                            415: {"description": "the body is not application/json"}})
    async def create_revocation(request: Request) -> JSONResponse:
        """Revoke certificates (one transaction), re-sign their CRLs, answer OCSP "revoked" at once."""
        wanted = parse_revoke_request(request.headers.get("content-type"), await request.body())
        reason = RevocationReason.parse(wanted.reason)
        result = await run_in_threadpool(revoke, api.service, api.authority, wanted.targets, reason, wanted.at)
        source.invalidate((record.issuer, record.serial) for record in result.revoked)
        return JSONResponse(revoke_response(result).model_dump(mode="json"), status_code=201)

    @routes.get("/certificates/{serial_or_name}",
                responses={400: {"description": "serial: followed by something not hex"},
                           401: {"description": "missing or wrong bearer token"},
                           404: {"description": "no such certificate"},
                           409: {"description": "a bare target that is both a NAME and a serial"}})
    async def certificate(serial_or_name: str) -> JSONResponse:
        """The inventory records of a NAME or SERIAL (or name:NAME, serial:HEX), as
        `mtlskit show --json` prints them."""
        records = await run_in_threadpool(api.service.inventory.find_one, serial_or_name)
        now = api.service.clock.now()
        return JSONResponse([certificate_json(r, now) for r in records])

    return routes


def parse_revoke_request(content_type: str | None, body: bytes) -> RevokeRequest:
    """The request body, or why not.

    Raises:
        StarletteHTTPException: 415 for anything but JSON, 413 past the size limit.
        BadInput: malformed JSON, or fields of the wrong shape.
    """
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise StarletteHTTPException(415, "send the request body as application/json")
    if len(body) > MAX_JSON_OCTETS:
        raise StarletteHTTPException(413, f"requests are limited to {MAX_JSON_OCTETS} bytes")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput(f"the request body is not JSON: {exc}",
                       hint='send e.g. {"targets": ["alice"], "reason": "key-compromise"}') from None
    except RecursionError:
        raise BadInput("the request body nests JSON too deeply",
                       hint='send e.g. {"targets": ["alice"], "reason": "key-compromise"}') from None
    try:
        return RevokeRequest.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors())
        raise BadInput(f"bad revocation request: {problems}",
                       hint='send e.g. {"targets": ["alice"], "reason": "key-compromise"}') from None


def revoke_response(result: RevokeResult) -> RevokeResponse:
    """The 201 body; ``crl_numbers`` are read from the CRLs signed by this very revocation."""
    return RevokeResponse(
        revoked=[RevokedCertificate(serial=r.serial_hex, issuer=r.issuer, name=r.name, revoked_at=result.at,
                                    reason=result.reason.value) for r in result.revoked],
        crl_numbers={name: crl_number_of(der) for name, der in result.crl_ders.items()},
        deployments=[DeploymentRefresh(server=d.server, directory=str(d.directory), status=d.status,
                                       message=d.message) for d in result.deployments or []])


def certificate_json(record, now: dt.datetime) -> dict:
    """One inventory record in the shape of `mtlskit show --json`."""
    return {key: _iso(value) if isinstance(value, dt.datetime) else value
            for key, value in record.summary(now).items()} | {"pem": record.pem}


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
