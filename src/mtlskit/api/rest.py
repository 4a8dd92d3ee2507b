"""The REST API of `mtlskit serve --api` (``/api/v1``, OpenAPI at ``/api/v1/openapi.json``).

An adapter, nothing more: each route checks who is calling and what they may do, parses
the body, and calls the workflow the CLI calls (issue, sign, renew, revoke), in a thread,
acting as the caller (every audit event it writes carries ``"by": "<via>:<name>"``).

    GET  /certificates                   list/search (name, status, profile, expiring; paged)   read
    GET  /certificates/{serial|name}     show                                                   read
    POST /certificates                   issue: a new key, returned once (PEM or PKCS#12)      issue
    POST /sign                           sign a CSR                                             issue
    POST /certificates/{target}/renew    renew (with a CSR, or as `mtlskit renew`)              issue
    POST /revocations                    revoke; OCSP answers "revoked" at once                revoke
    GET  /crls                           CRL status per CA                                      read
    GET  /deployments                    what `mtlskit deploy` installed                        read
    GET  /whoami                         the caller, its role and audit ``by``                  read
    GET  /events                         the audit trail, newest first                          admin

Who: ``Authorization: Bearer <token>`` (an API token of `mtlskit token api create`, or
``HOME/api-token`` as admin: :mod:`mtlskit.api.token`), or, on `serve --tls-port` without
an ``Authorization`` field, the client certificate the TLS layer verified, mapped to a role
by ``[roles]`` (:mod:`mtlskit.api.auth`). Errors are ``application/problem+json``: 401
(with ``WWW-Authenticate: Bearer``) no or bad credentials, 403 a role too low, 404, 409,
413, 415, 422 a body of the wrong shape; 400 what the workflow refuses as bad input.
"""

from __future__ import annotations

import dataclasses
import functools
import logging

from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPBearer
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from mtlskit.api.auth import Forbidden, Principal, Unauthenticated, allows
from mtlskit.api.problems import InvalidRequest
from mtlskit.audit_actor import acting_as
from mtlskit.errors import BadInput

log = logging.getLogger("mtlskit.serve")
PREFIX = "/api/v1"
OPENAPI_PATH = PREFIX + "/openapi.json"
MAX_JSON_OCTETS = 64 * 1024  # the server refuses larger bodies anyway (api.server.MAX_BODY)


@dataclasses.dataclass
class RestApi:
    """What the REST routes need: the worker's service, the loaded CA, and the token of
    ``HOME/api-token`` (an admin token; None: only API tokens and certificates)."""

    service: object
    authority: object
    token: str | None = dataclasses.field(default=None, repr=False)


_bearer = HTTPBearer(auto_error=False, description="an API token (`mtlskit token api create`) or HOME/api-token")

COMMON_RESPONSES = {401: {"description": "no credentials, or a token/certificate that is unknown, revoked or expired"},
                    403: {"description": "the caller's role does not allow this"}}


def router(api: RestApi, source) -> APIRouter:
    """The /api/v1 routes; ``source`` is this worker's OcspSource."""
    from mtlskit.api import rest_certificates, rest_revocations, rest_status

    routes = APIRouter(prefix=PREFIX, dependencies=[Depends(_bearer)], responses=COMMON_RESPONSES)
    rest_certificates.add_routes(routes, api)
    rest_revocations.add_routes(routes, api, source)
    rest_status.add_routes(routes, api)
    return routes


def requires(api: RestApi, role: str):
    """A dependency: the caller's Principal, if its role allows ``role``.

    Raises:
        Unauthenticated: no or bad credentials (401).
        Forbidden: a role too low (403).
    """
    async def principal(request: Request) -> Principal:
        try:
            caller = await run_in_threadpool(authenticate_request, api, request)
        except (Unauthenticated, Forbidden) as refused:  # for the operator: who knocked (never a token)
            log.warning("%s %s from %s refused: %s", request.method, request.url.path, _peer(request), refused.message)
            raise
        if not allows(caller, role):
            log.warning("%s %s refused: %s has the role %s", request.method, request.url.path, caller.audit_by,
                        caller.role)
            raise Forbidden(f"{caller.audit_by} has the role {caller.role!r}; this needs {role!r} or above")
        return caller

    return principal


def authenticate_request(api: RestApi, request: Request) -> Principal:
    """The caller: by its ``Authorization`` field when it sends one, else by the verified
    client certificate of the TLS listener. Nothing in the query string counts."""
    from mtlskit.api.token import authenticate

    now = api.service.clock.now()
    authorizations = request.headers.getlist("authorization")
    client_pem = _client_certificate(request)
    if authorizations or client_pem is None:
        return authenticate(authorizations, api.service.inventory.db, api.token, now)
    return _certificate_principal(api, client_pem, now)


def _peer(request: Request) -> str:
    return request.client.host if request.client else "?"


def _client_certificate(request: Request) -> str | None:
    tls = (request.scope.get("extensions") or {}).get("tls")
    chain = (tls or {}).get("client_cert_chain") or []
    return chain[0] if chain else None


def _certificate_principal(api: RestApi, pem: str, now) -> Principal:
    from cryptography import x509

    from mtlskit.api.auth import certificate_refusal, common_name, principal_for_certificate

    try:
        certificate = x509.load_pem_x509_certificate(pem.encode("ascii", "replace"))
    except ValueError:  # the TLS layer verified it: unreadable here would be our bug, never a way in
        raise Unauthenticated("the client certificate cannot be read") from None
    refusal = certificate_refusal(certificate, api.service.inventory, now)
    if refusal is not None:
        raise Unauthenticated(refusal)
    principal = principal_for_certificate(certificate, api.service.settings)
    if principal is None:
        raise Forbidden(f"the client certificate {common_name(certificate)!r} has no role",
                        hint="map it in [roles] of mtlskit.toml, e.g. read = [\"NAME\"]")
    return principal


async def run_as(principal: Principal, function, *args, **kwargs):
    """``function(*args, **kwargs)`` in a worker thread, its audit events ``by`` the caller."""
    return await run_in_threadpool(functools.partial(_acting, principal.audit_by, function, *args, **kwargs))


def _acting(by: str, function, *args, **kwargs):
    with acting_as(by):
        return function(*args, **kwargs)


def parse_body(model: type[BaseModel], content_type: str | None, body: bytes, example: str) -> BaseModel:
    """The request body as ``model``, or why not (never echoing the body: it may hold a password).

    Raises:
        StarletteHTTPException: 415 for anything but JSON, 413 past the size limit.
        BadInput: not JSON (400).
        InvalidRequest: JSON of the wrong shape (422).
    """
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise StarletteHTTPException(415, "send the request body as application/json")
    if len(body) > MAX_JSON_OCTETS:
        raise StarletteHTTPException(413, f"requests are limited to {MAX_JSON_OCTETS} bytes")
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_input=False, include_url=False)
        invalid = [e for e in errors if e["type"] == "json_invalid"]
        if invalid:  # the parser's own words: where, and why (nothing of the body itself)
            why = str((invalid[0].get("ctx") or {}).get("error", ""))[:120]
            if "recursion limit" in why:
                raise BadInput("the request body nests JSON too deeply", hint=f"send e.g. {example}") from None
            raise BadInput(f"the request body is not JSON ({why})", hint=f"send e.g. {example}") from None
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in errors[:10])
        raise InvalidRequest(f"bad request body: {problems}", hint=f"send e.g. {example}") from None


def json_schema_body(model: type[BaseModel]) -> dict:
    """``openapi_extra`` documenting a body the route parses itself (to answer 413/415/422 its way)."""
    schema = model.model_json_schema()
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": _inlined(schema, schema.pop("$defs", {}))}}}}


def _inlined(node, definitions: dict):
    """``node`` with each ``{"$ref": "#/$defs/X"}`` replaced by X (our models do not recurse):
    pydantic's local references would not resolve inside the OpenAPI document."""
    if isinstance(node, dict):
        reference = node.get("$ref", "")
        if reference.startswith("#/$defs/"):
            return _inlined(definitions[reference.removeprefix("#/$defs/")], definitions)
        return {key: _inlined(value, definitions) for key, value in node.items()}
    if isinstance(node, list):
        return [_inlined(value, definitions) for value in node]
    return node
