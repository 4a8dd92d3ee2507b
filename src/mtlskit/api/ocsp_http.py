"""OCSP over HTTP (RFC 6960 Appendix A, RFC 5019 §5-6), framework-free.

One function turns (method, path, body, If-None-Match) into (status, headers, body),
so the ASGI route and the raw-protocol fast path in :mod:`mtlskit.api.server`
answer byte for byte the same.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from email.utils import format_datetime
from urllib.parse import unquote_to_bytes

from mtlskit.publish.ocsp import MAX_REQUEST_OCTETS
from mtlskit.publish.ocsp_source import MALFORMED, OcspReply, OcspSource

OCSP_PATH = "/ocsp"
CONTENT_TYPE = b"application/ocsp-response"

Headers = list[tuple[bytes, bytes]]


def request_from_get_path(path: bytes) -> bytes | None:
    """The DER request in ``/ocsp/{url-encoded base64 of the DER}`` (RFC 6960 A.1.1),
    or None when it cannot be decoded. '/' is a base64 character, so everything after
    the prefix is the request; base64url ('-', '_') is accepted too. The whole path is
    decoded before the prefix is cut, so a percent-encoded prefix (``/%6Fcsp/``) is cut
    where it ends."""
    decoded = unquote_to_bytes(path)
    prefix = OCSP_PATH.encode() + b"/"
    if not decoded.startswith(prefix):
        return None
    encoded = decoded[len(prefix):].strip()
    if not encoded:
        return None
    encoded = encoded.replace(b"-", b"+").replace(b"_", b"/")
    encoded += b"=" * (-len(encoded) % 4)
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None


_NOT_ALLOWED_BODY = (b'{"type":"about:blank","title":"Method Not Allowed","status":405,'
                     b'"detail":"OCSP requests are sent with POST or GET (RFC 6960 Appendix A)"}')
METHOD_NOT_ALLOWED = (405, [(b"allow", b"GET, POST"), (b"content-type", b"application/problem+json"),
                            (b"content-length", str(len(_NOT_ALLOWED_BODY)).encode())], _NOT_ALLOWED_BODY)


def reply_for(source: OcspSource, method: bytes, path: bytes, body: bytes) -> OcspReply | None:
    """The OCSP reply for a POST body or a GET path; None for any other method."""
    if method == b"POST":
        return source.respond(body) if len(body) <= MAX_REQUEST_OCTETS else MALFORMED
    if method in (b"GET", b"HEAD"):
        der = request_from_get_path(path) if len(path) <= 4 * MAX_REQUEST_OCTETS else None
        return source.respond(der) if der is not None else MALFORMED
    return None


def answer(source: OcspSource, method: bytes, path: bytes, body: bytes, now: dt.datetime,
           if_none_match: bytes | None = None) -> tuple[int, Headers, bytes]:
    """HTTP status, headers and body for one request to /ocsp (POST or GET).

    Garbage gets a malformedRequest OCSP response with status 200 (RFC 6960 §2.3),
    which is what OCSP clients understand; only the wrong method is an HTTP error.
    """
    reply = reply_for(source, method, path, body)
    if reply is None:
        return METHOD_NOT_ALLOWED
    headers = reply_headers(reply, now)
    if reply.etag and if_none_match and reply.etag.encode() in if_none_match:
        return 304, headers, b""
    return 200, headers, b"" if method == b"HEAD" else reply.body


def reply_headers(reply: OcspReply, now: dt.datetime) -> Headers:
    """RFC 5019 §6.2: a pre-signed response carries max-age (never past nextUpdate),
    ETag, Last-Modified and Expires; a nonce or error response must not be cached."""
    if not reply.cacheable:
        return [(b"content-type", CONTENT_TYPE), (b"content-length", str(len(reply.body)).encode()),
                (b"cache-control", b"no-store")]
    cache_control = b"max-age=%d, public, no-transform, must-revalidate" % reply.max_age(now)
    return [*_fixed_headers(reply), (b"cache-control", cache_control)]


def _fixed_headers(reply: OcspReply) -> Headers:
    """The headers of a pre-signed response that do not change with the clock, made once."""
    headers = reply.__dict__.get("_http_headers")
    if headers is None:
        headers = [(b"content-type", CONTENT_TYPE), (b"content-length", str(len(reply.body)).encode()),
                   (b"etag", reply.etag.encode()),
                   (b"last-modified", format_datetime(reply.this_update, usegmt=True).encode()),
                   (b"expires", format_datetime(reply.next_update, usegmt=True).encode())]
        reply.__dict__["_http_headers"] = headers  # OcspReply is frozen; this is a memo, not state
    return headers
