"""HTTP/1.x messages as `mtlskit serve` writes them: the request it read, the Date field,
and a whole response rendered to bytes (RFC 9112). Pure, apart from the wall clock of
the Date field."""

from __future__ import annotations

import dataclasses
import time
from email.utils import formatdate

REASONS = {200: b"OK", 201: b"Created", 303: b"See Other", 304: b"Not Modified", 400: b"Bad Request", 401: b"Unauthorized",
           403: b"Forbidden", 404: b"Not Found", 405: b"Method Not Allowed", 409: b"Conflict",
           413: b"Content Too Large", 414: b"URI Too Long", 415: b"Unsupported Media Type", 422: b"Unprocessable Content",
           431: b"Request Header Fields Too Large",
           500: b"Internal Server Error"}

Headers = list[tuple[bytes, bytes]]
MAX_BODY = 64 * 1024  # the longest request target, and the longest body, read
MAX_HEADERS = 100  # the most header fields read


@dataclasses.dataclass
class Request:
    """One request as read (header names lower-cased); ``version`` is "1.0" or "1.1"."""

    method: bytes
    target: bytes
    headers: Headers
    body: bytes
    keep_alive: bool
    version: str

    @property
    def path(self) -> bytes:
        return self.target.split(b"?", 1)[0]

    def header(self, name: bytes) -> bytes | None:
        return next((v for k, v in self.headers if k == name), None)


class DateHeader:
    """The Date field line (RFC 9110 §6.6.1), formatted once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def get(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._value = b"date: " + formatdate(now, usegmt=True).encode() + b"\r\n"
        return self._value


def render(request: Request, status: int, headers: Headers, body: bytes, date: bytes) -> bytes:
    """Status line, the Date field line (``date``, see DateHeader), headers, the connection
    header this request needs, and body."""
    version = b"HTTP/1.0" if request.version == "1.0" else b"HTTP/1.1"
    lines = [version, b" ", str(status).encode(), b" ", REASONS.get(status, b"Unknown"), b"\r\n", date]
    for name, value in headers:
        lines += [name, b": ", value, b"\r\n"]
    if not request.keep_alive:
        lines.append(b"connection: close\r\n")
    elif request.version == "1.0":
        lines.append(b"connection: keep-alive\r\n")  # HTTP/1.0 persistence must be announced
    lines += [b"\r\n", body]
    return b"".join(lines)
