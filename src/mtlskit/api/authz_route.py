"""``/authz``: the answer to Nginx's ``auth_request`` subrequest, framework-free (a hot path).

Nginx (``mtlskit deploy nginx --policy``) sends, and only it can send, these header fields;
the subrequest carries none of the client's own (``proxy_pass_request_headers off``):

=============================== ===============================================================
``X-Mtlskit-Authz-Secret``      the deployment's shared secret (written 0600 into its
                                directory, recorded here as a SHA-256); compared in constant
                                time. Missing or wrong: 403, whatever else is sent.
``X-Mtlskit-Verify``            ``$ssl_client_verify``; anything but ``SUCCESS`` is denied.
``X-Mtlskit-Fingerprint``       SHA-256 of the verified certificate (upper-case hex).
``X-Mtlskit-Method``            ``$request_method`` of the client's request.
``X-Mtlskit-Path``              ``$uri`` of the client's request: the path Nginx routes.
=============================== ===============================================================

Each must come exactly once (a duplicate is a forgery: denied). The answer is 200 with
``X-Mtlskit-Authz-Rule: <rule name>`` (Nginx hands it to the upstream as
``X-Client-Authz-Rule``), or 403 ``application/problem+json`` saying why (also in
``X-Mtlskit-Authz-Denied``, for Nginx's access log); Nginx turns
anything else (5xx, mtlskit serve down) into a refusal too.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from mtlskit.api.problems import problem

if TYPE_CHECKING:    # the serving process builds the Authorizer (api/wiring.py)
    from mtlskit.authz.decider import Authorizer

log = logging.getLogger("mtlskit.authz")

AUTHZ_PATH = "/authz"
SECRET = b"x-mtlskit-authz-secret"
VERIFY = b"x-mtlskit-verify"
FINGERPRINT = b"x-mtlskit-fingerprint"
METHOD = b"x-mtlskit-method"
PATH = b"x-mtlskit-path"
RULE = b"x-mtlskit-authz-rule"
DENIED = b"x-mtlskit-authz-denied"
_FIELDS = (SECRET, VERIFY, FINGERPRINT, METHOD, PATH)
_NO_STORE = (b"cache-control", b"no-store")


def is_authz(path: str) -> bool:
    return path == AUTHZ_PATH


def answer(authorizer: Authorizer | None, method: str, headers: list[tuple[bytes, bytes]]) -> tuple[int, list, bytes]:
    """(status, headers, body) of one ``/authz`` request."""
    if authorizer is None or not authorizer.enabled:
        return _problem(404, "/authz is off: no deployment was made with `mtlskit deploy nginx --policy`")
    if method not in ("GET", "HEAD"):
        return _problem(405, "the authz subrequest is a GET", [(b"allow", b"GET, HEAD")])
    fields = _fields(headers)
    found, policy = authorizer.policy_for(fields.get(SECRET) or b"") if fields is not None else (False, None)
    if not found:
        return _problem(403, "only the deployment's server may ask /authz (its shared secret is missing or wrong)")
    if policy is None:
        return _denied("the deployment's policy cannot be read")
    if fields.get(VERIFY) != b"SUCCESS":
        return _denied("no verified client certificate")
    decision = authorizer.decide(policy, _text(fields.get(FINGERPRINT)), _text(fields.get(METHOD)),
                                 _text(fields.get(PATH)))
    if not decision.allowed:
        return _denied(decision.reason)
    return 200, [(RULE, decision.rule.encode()), _NO_STORE, (b"content-length", b"0")], b""


def _fields(headers: list[tuple[bytes, bytes]]) -> dict[bytes, bytes] | None:
    """Our header fields, or None when one comes twice (a value injected beside nginx's)."""
    fields: dict[bytes, bytes] = {}
    for name, value in headers:
        name = name.lower().replace(b"_", b"-")
        if name in _FIELDS:
            if name in fields:
                return None
            fields[name] = value
    return fields


def _text(value: bytes | None) -> str:
    return "" if value is None else value.decode("latin-1")


def _denied(reason: str) -> tuple[int, list, bytes]:
    """403, and the reason (one of our fixed phrases) for nginx's access log."""
    return _problem(403, f"denied: {reason}", [(DENIED, reason.encode())])


def _problem(status: int, detail: str, extra: list | None = None) -> tuple[int, list, bytes]:
    body = problem(status, detail)
    return status, [(b"content-type", b"application/problem+json"), _NO_STORE,
                    (b"content-length", str(len(body)).encode()), *(extra or [])], body


async def serve(authorizer: Authorizer | None, scope, receive, send) -> None:
    """The ASGI handler placed in front of FastAPI (see :mod:`mtlskit.api.app`)."""
    try:
        status, headers, body = answer(authorizer, scope["method"], scope["headers"])
    except Exception:   # denied, never allowed, on a bug or an unreadable inventory
        log.exception("/authz failed")
        status, headers, body = _problem(500, "internal error: the request is denied")
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})
