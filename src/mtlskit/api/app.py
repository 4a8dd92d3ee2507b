"""The ASGI application of `mtlskit serve`.

Routes: ``/ocsp`` (RFC 6960 POST and GET), ``/crl/<ca>.crl`` (DER) and ``.pem``,
``/ca/<ca>.pem``, ``/healthz``; with ``serve --api`` also the authenticated REST API
under ``/api/v1`` (:mod:`mtlskit.api.rest`) and its OpenAPI document at
``/api/v1/openapi.json``. Errors are ``application/problem+json``.

``/ocsp`` is answered by a plain ASGI function placed in front of FastAPI: it is the
hot path (relying parties call it for every handshake) and needs no routing,
validation or dependency injection. Everything else goes through FastAPI.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Awaitable, Callable, Mapping

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from mtlskit.api import authz_route, ocsp_http
from mtlskit.api.problems import PROBLEM_JSON, headers_for, problem, problem_for
from mtlskit.api.rest import OPENAPI_PATH, RestApi, router
from mtlskit.clock import Clock
from mtlskit.errors import MtlskitError, NotFound
from mtlskit.publish.ocsp_source import INTERNAL_ERROR, OcspSource

log = logging.getLogger("mtlskit.serve")
CrlProvider = Callable[[str], bytes]  # CA name -> current CRL (DER); raises NotFound


@dataclasses.dataclass
class ServiceView:
    """What the HTTP layer needs, built by the composition root (see serve_cmd)."""

    source: OcspSource
    ca_certificates: Mapping[str, x509.Certificate]
    crl_der: CrlProvider
    clock: Clock
    api: RestApi | None = None  # the REST API, only with `serve --api`
    enroll: object | None = None  # EnrollApi: enrollment and remote renewal, with `serve --tls-port`
    metrics: object | None = None  # WorkerMetrics: /metrics and the counts (mtlskit.metrics), unless --no-metrics
    authz: object | None = None  # authz.decider.Authorizer: /authz for `deploy nginx --policy`
    ui: Callable[..., Awaitable[None]] | None = None  # the web UI's ASGI app (/ui/), with `serve --ui`


def create_app(view: ServiceView) -> Callable[..., Awaitable[None]]:
    """The ASGI app: a pure-ASGI /ocsp handler in front of the FastAPI routes."""
    api = served = _fastapi_app(view)
    if view.metrics is not None:
        from mtlskit.api.metrics_routes import counted

        served = counted(api, view.metrics.recorder)

    async def app(scope, receive, send) -> None:
        if scope["type"] == "http" and _is_ocsp(scope["path"]):
            await _ocsp(view, scope, receive, send)
        elif scope["type"] == "http" and authz_route.is_authz(scope["path"]):  # a hot path too
            await authz_route.serve(view.authz, scope, receive, send)
        elif view.ui is not None and scope["type"] == "http" and _is_ui(scope["path"]):
            await view.ui(scope, receive, send)
        else:
            await served(scope, receive, send)

    app.fastapi = api  # type: ignore[attr-defined]
    app.metrics = view.metrics  # type: ignore[attr-defined]  # the server counts /ocsp answers with it
    return app


def _is_ui(path: str) -> bool:
    return path == "/ui" or path.startswith("/ui/")


def _is_ocsp(path: str) -> bool:
    return path == ocsp_http.OCSP_PATH or path.startswith(ocsp_http.OCSP_PATH + "/")


async def _ocsp(view: ServiceView, scope, receive, send) -> None:
    body = b""
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body += message.get("body", b"")
        more = message.get("more_body", False)
        if len(body) > ocsp_http.MAX_REQUEST_OCTETS:
            break
    path = scope.get("raw_path") or scope["path"].encode()
    if_none_match = next((v for k, v in scope["headers"] if k == b"if-none-match"), None)
    try:
        status, headers, payload = ocsp_http.answer(view.source, scope["method"].encode(), path, body,
                                                    view.clock.now(), if_none_match)
    except Exception:  # a bug, not bad input: OCSP clients understand internalError (RFC 6960 §2.3)
        log.exception("OCSP request failed")
        status, payload = 200, INTERNAL_ERROR.body
        headers = ocsp_http.reply_headers(INTERNAL_ERROR, view.clock.now())
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def _problem_response(status: int, body: bytes, headers: Mapping[str, str] | None = None) -> Response:
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=dict(headers or {}))


def _fastapi_app(view: ServiceView) -> FastAPI:
    # No trailing-slash redirects: Starlette builds their Location from the client's Host field.
    api = FastAPI(title="mtlskit", docs_url=None, redoc_url=None, redirect_slashes=False,
                  openapi_url=OPENAPI_PATH if view.api is not None else None)
    if view.api is not None:
        api.include_router(router(view.api, view.source))
    if view.enroll is not None:
        from mtlskit.api import enroll_routes

        api.include_router(enroll_routes.router(view.enroll))
    if view.metrics is not None:
        from mtlskit.api import metrics_routes

        api.include_router(metrics_routes.router(view.metrics))

    @api.exception_handler(MtlskitError)
    async def _domain_error(_request: Request, exc: MtlskitError) -> Response:
        return _problem_response(*problem_for(exc), headers_for(exc))

    @api.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        return _problem_response(exc.status_code, problem(exc.status_code, str(exc.detail)), exc.headers)

    @api.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return _problem_response(500, problem(500, f"internal error: {type(exc).__name__}", "internal"))

    @api.get("/healthz")
    async def healthz() -> JSONResponse:
        responders = {name: ca.responder.certificate.not_valid_after_utc.isoformat()
                      for name, ca in view.source.cas.items()}
        return JSONResponse({"status": "ok", "cas": sorted(view.ca_certificates),
                             "ocsp_responders_valid_until": responders})

    @api.get("/ca/{filename}")
    async def ca_certificate(filename: str) -> Response:
        # .pem for people; .crt (DER, application/pkix-cert) is what the caIssuers AIA
        # of issued certificates points at (RFC 5280 §4.2.2.1).
        name, suffix = _split(filename, (".pem", ".crt"), "CA certificates are served as <ca>.pem or <ca>.crt")
        certificate = view.ca_certificates.get(name)
        if certificate is None:
            raise NotFound(f"no CA named {name!r}", hint=_known(view))
        if suffix == ".crt":
            return Response(certificate.public_bytes(serialization.Encoding.DER), media_type="application/pkix-cert")
        return Response(certificate.public_bytes(serialization.Encoding.PEM),
                        media_type="application/x-pem-file")

    @api.get("/crl/{filename}")
    async def crl(filename: str) -> Response:
        # RFC 5280 §4.2.1.13 / RFC 2585: CRLs over HTTP are DER, application/pkix-crl.
        name, suffix = _split(filename, (".crl", ".pem"), "CRLs are served as <ca>.crl (DER) or <ca>.pem")
        pem = suffix == ".pem"
        if name not in view.ca_certificates:
            raise NotFound(f"no CA named {name!r}", hint=_known(view))
        der = view.crl_der(name)
        if pem:
            crl_object = x509.load_der_x509_crl(der)
            return Response(crl_object.public_bytes(serialization.Encoding.PEM),
                            media_type="application/x-pem-file")
        return Response(der, media_type="application/pkix-crl")

    return api


def _split(filename: str, suffixes: tuple[str, ...], usage: str) -> tuple[str, str]:
    for suffix in suffixes:
        if filename.endswith(suffix):
            return filename[: -len(suffix)], suffix
    raise NotFound(f"{filename}: {usage}")


def _known(view: ServiceView) -> str:
    return f"CAs served here: {', '.join(sorted(view.ca_certificates))}"
