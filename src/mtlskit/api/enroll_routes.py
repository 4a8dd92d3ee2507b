"""Enrollment and remote renewal over `serve --tls-port`: ``POST /api/v1/enroll`` and
``POST /api/v1/renew``.

Both are answered only on the TLS listener (on plain HTTP a token would cross the network
in clear, and there is no client certificate): elsewhere they are 403. ``enroll`` is
authorised by a single-use token in the body (never in the URL: a query string ends up in
logs), ``renew`` by the client certificate the TLS layer verified, which the server puts in
the ASGI scope (``scope["extensions"]["tls"]["client_cert_chain"]``); no header counts.
Errors are ``application/problem+json`` (the domain errors' codes: ``token-refused``,
``names-not-allowed``, ``not-authenticated``, ``policy``, ``bad-input``).
"""

from __future__ import annotations

import dataclasses
import json
import ssl
from typing import Optional

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from mtlskit.errors import BadInput

PREFIX = "/api/v1"
MAX_CSR_CHARS = 16 * 1024
MAX_TOKEN_CHARS = 256


@dataclasses.dataclass
class EnrollApi:
    """What the enrollment routes need: the worker's service and the loaded CA."""

    service: object
    authority: object


class EnrollRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=1, max_length=MAX_TOKEN_CHARS, description="the enrollment token")
    csr: str = Field(min_length=1, max_length=MAX_CSR_CHARS, description="PEM certificate signing request")


class RenewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    csr: str = Field(min_length=1, max_length=MAX_CSR_CHARS, description="PEM CSR of the new key")


def caller_certificate(request: Request) -> Optional[bytes]:
    """The certificate (DER) the TLS client presented and the TLS layer verified, or None.

    Raises:
        StarletteHTTPException: 403 when the request did not come through the TLS listener.
    """
    tls = (request.scope.get("extensions") or {}).get("tls")
    if tls is None:
        raise StarletteHTTPException(403, "enrollment and renewal are served on the TLS port only "
                                          "(serve --tls-port)")
    chain = tls.get("client_cert_chain") or []
    return ssl.PEM_cert_to_DER_cert(chain[0]) if chain else None


def router(api: EnrollApi) -> APIRouter:
    routes = APIRouter(prefix=PREFIX)

    @routes.post("/enroll", status_code=201,
                 responses={400: {"description": "bad JSON or CSR"},
                            403: {"description": "token unknown, used, expired or revoked; names not allowed"}})
    async def enroll(request: Request) -> JSONResponse:
        """Sign a CSR under a single-use enrollment token."""
        from mtlskit.lifecycle.tokens import enroll as enroll_with_token

        caller_certificate(request)
        wanted = _parse(EnrollRequest, request.headers.get("content-type"), await request.body())
        certificate, record = await run_in_threadpool(enroll_with_token, api.service, api.authority,
                                                      wanted.token, wanted.csr.encode("ascii", "replace"))
        return JSONResponse(_issued(api, record), status_code=201)

    @routes.post("/renew", status_code=201,
                 responses={400: {"description": "bad JSON or CSR"},
                            403: {"description": "no client certificate; revoked, expired or superseded"}})
    async def renew(request: Request) -> JSONResponse:
        """Renew the certificate the client authenticated with, for the CSR's new key."""
        from mtlskit.lifecycle.remote_renewal import renew_for_caller

        client = caller_certificate(request)
        wanted = _parse(RenewRequest, request.headers.get("content-type"), await request.body())
        record = await run_in_threadpool(renew_for_caller, api.service, api.authority, client,
                                         wanted.csr.encode("ascii", "replace"))
        return JSONResponse(_issued(api, record), status_code=201)

    return routes


def _issued(api: EnrollApi, record) -> dict:
    from cryptography.hazmat.primitives import serialization

    chain = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in api.authority.chain)
    return {"name": record.name, "serial": record.serial_hex, "profile": record.profile,
            "not_after": record.not_after.isoformat(), "certificate": record.pem, "chain": chain.decode("ascii")}


def _parse(model, content_type: str | None, body: bytes):
    """The body as ``model``; never echoes the body (it may hold the token)."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise StarletteHTTPException(415, "send the request body as application/json")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BadInput("the request body is not JSON") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in e["loc"]) or "body" for e in exc.errors()})
        raise BadInput(f"bad request body: check the field(s) {', '.join(fields)}") from None
