"""``POST /api/v1/revocations``: revoke through the running service (role ``revoke``).

Calls the workflow of `mtlskit revoke` (:func:`mtlskit.revoke.revoker.revoke`), then drops
this worker's OCSP cache entries of the revoked certificates, so that the very next OCSP
answer of this process says "revoked". Other workers learn of it through the change marker
every OCSP source polls, within ``--ocsp-refresh-seconds``.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from mtlskit.api.rest import json_schema_body, parse_body, requires, run_as
from mtlskit.api.rest_models import DeploymentRefresh, RevokedCertificate, RevokeRequest, RevokeResponse
from mtlskit.publish.crl import crl_number_of
from mtlskit.revoke.reasons import RevocationReason
from mtlskit.revoke.revoker import RevokeResult, revoke

EXAMPLE = '{"targets": ["alice"], "reason": "key-compromise"}'


def add_routes(routes: APIRouter, api, source) -> None:
    @routes.post("/revocations", status_code=201, response_model=RevokeResponse,
                 openapi_extra=json_schema_body(RevokeRequest),
                 responses={400: {"description": "bad JSON, reason, date or target"},
                            404: {"description": "no such certificate"},
                            409: {"description": "already revoked, a name with several valid certificates, "
                                                 "or a bare target that is both a NAME and a serial"},
                            415: {"description": "the body is not application/json"},
                            422: {"description": "a body of the wrong shape"}})
    async def create_revocation(request: Request, caller=Depends(requires(api, "revoke"))) -> JSONResponse:
        """Revoke certificates (one transaction), re-sign their CRLs, answer OCSP "revoked" at once."""
        wanted = parse_body(RevokeRequest, request.headers.get("content-type"), await request.body(), EXAMPLE)
        reason = RevocationReason.parse(wanted.reason)
        result = await run_as(caller, revoke, api.service, api.authority, wanted.targets, reason, wanted.at)
        source.invalidate((record.issuer, record.serial) for record in result.revoked)
        return JSONResponse(revoke_response(result).model_dump(mode="json"), status_code=201)


def revoke_response(result: RevokeResult) -> RevokeResponse:
    """The 201 body; ``crl_numbers`` are read from the CRLs signed by this very revocation."""
    return RevokeResponse(
        revoked=[RevokedCertificate(serial=r.serial_hex, issuer=r.issuer, name=r.name, revoked_at=result.at,
                                    reason=result.reason.value) for r in result.revoked],
        crl_numbers={name: crl_number_of(der) for name, der in result.crl_ders.items()},
        deployments=[DeploymentRefresh(server=d.server, directory=str(d.directory), status=d.status,
                                       message=d.message) for d in result.deployments or []])
