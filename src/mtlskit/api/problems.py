"""Domain errors as HTTP problems (RFC 9457 ``application/problem+json``).

The only place in mtlskit that maps an error to an HTTP status.
"""

from __future__ import annotations

import json

from mtlskit import errors
from mtlskit.api.auth import Unauthenticated


class InvalidRequest(errors.BadInput):
    """A JSON body or query of the wrong shape: unknown or missing fields, wrong types (422)."""

    code = "invalid-request"


STATUS_BY_ERROR: list[tuple[type[errors.MtlskitError], int]] = [
    # most specific first
    (errors.WrongPassphrase, 400),
    (InvalidRequest, 422),   # a JSON body of the wrong shape (RFC 9110 §15.5.21)
    (errors.BadInput, 400),
    (errors.UsageError, 400),
    (errors.NotFound, 404),
    (errors.AlreadyExists, 409),
    (errors.AlreadyRevoked, 409),
    (errors.Ambiguous, 409),
    (Unauthenticated, 401),  # RFC 9110 §15.5.2: with a WWW-Authenticate challenge (headers_for)
    (errors.PolicyViolation, 403),
    (errors.CheckFailed, 422),
    (errors.InternalError, 500),
]

TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
          409: "Conflict", 413: "Content Too Large", 415: "Unsupported Media Type", 422: "Unprocessable Content",
          500: "Internal Server Error"}
PROBLEM_JSON = "application/problem+json"


def status_for(error: errors.MtlskitError) -> int:
    for error_type, status in STATUS_BY_ERROR:
        if isinstance(error, error_type):
            return status
    return 500


def headers_for(error: errors.MtlskitError) -> dict[str, str]:
    """The header fields of the problem response: a Bearer challenge on every 401 (RFC 6750 §3)."""
    if isinstance(error, Unauthenticated):
        return {"WWW-Authenticate": BEARER_CHALLENGE}
    return {}


BEARER_CHALLENGE = 'Bearer realm="mtlskit"'


def problem(status: int, detail: str, code: str | None = None, hint: str | None = None) -> bytes:
    """The problem document; ``code`` is the error's stable code, ``hint`` what to do."""
    body = {"type": "about:blank", "title": TITLES.get(status, "Error"), "status": status, "detail": detail}
    if code:
        body["code"] = code
    if hint:
        body["hint"] = hint
    return json.dumps(body).encode()


def problem_for(error: errors.MtlskitError) -> tuple[int, bytes]:
    status = status_for(error)
    return status, problem(status, error.message, error.code, error.hint)
