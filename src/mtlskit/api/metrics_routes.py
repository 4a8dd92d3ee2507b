"""``GET /metrics`` (Prometheus text format) and the count of every request the app answers.

Access: Prometheus scrapes without credentials by default, so /metrics is open on the
address `serve` listens on (127.0.0.1 unless the operator chose another); with the
setting ``metrics_token_file`` it requires ``Authorization: Bearer <that file's token>``
(Prometheus: ``authorization: {credentials_file: ...}``). It shows counts, dates, CA,
profile and deployment names: no certificate subject, serial or request content.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from mtlskit.api.token import bearer_matches

METRICS_PATH = "/metrics"


def router(metrics) -> APIRouter:
    """The /metrics route of one worker's :class:`mtlskit.metrics.worker.WorkerMetrics`."""
    from mtlskit.metrics.exposition import CONTENT_TYPE

    routes = APIRouter()

    @routes.get(METRICS_PATH, include_in_schema=False)
    def scrape(request: Request) -> Response:  # sync: FastAPI runs it off the event loop (SQL, files)
        token = metrics.options.token
        if token is not None and not bearer_matches(request.headers.get("authorization"), token):
            raise StarletteHTTPException(401, "/metrics needs the bearer token of the metrics_token_file setting",
                                         headers={"WWW-Authenticate": 'Bearer realm="mtlskit-metrics"'})
        return Response(metrics.scrape(), media_type=CONTENT_TYPE)

    return routes


def counted(app, recorder):
    """``app`` counting each HTTP request by route template (never the raw path), method
    and status code."""

    async def counting(scope, receive, send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        status = 500

        async def send_status(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, send_status)
        finally:
            recorder.request(getattr(scope.get("route"), "path", None), scope["method"], status)

    return counting
