"""Whole HTTP responses to /ocsp requests, and the memories that spare rebuilding them.

:mod:`mtlskit.api.ocsp_http` decides what an OCSP request over HTTP is answered
(status, headers, body); this module turns that into the bytes `mtlskit serve` writes,
as fast as the answer allows:

- a pre-signed reply goes out as bytes rendered once per second and connection kind
  (Date and max-age change each second);
- a client sending again the very bytes of a request answered this second, while the
  source still holds the same pre-signed reply (revocations drop it, see
  OcspSource.presigned), gets the same bytes without the request being read again;
- a POST that differs from one answered before only in the octets of the nonce that ends
  it (:func:`mtlskit.publish.ocsp.split_nonce`; the HTTP head, Content-Length included,
  and every DER length are in the part before) is signed by the source for the request
  shape it already knows (OcspSource.respond_nonce), and its head is rendered once per
  second and body length.

Each memory holds at most MEMO_ENTRIES entries and is emptied when full.

With metrics on, every answer is counted by status with its time
(:class:`mtlskit.metrics.recorder.Recorder`: two stores to shared memory).
"""

from __future__ import annotations

import logging
from time import perf_counter as _timer

from mtlskit.api import ocsp_http
from mtlskit.api.accept import simple_request
from mtlskit.api.http1 import MAX_BODY, MAX_HEADERS, DateHeader, Request, render
from mtlskit.clock import Clock
from mtlskit.publish.ocsp import split_nonce
from mtlskit.publish.ocsp_source import INTERNAL_ERROR, OcspReply, OcspSource

log = logging.getLogger("mtlskit.serve")
MEMO_ENTRIES = 4096


class OcspWire:
    """The response bytes to /ocsp requests of one serving process."""

    def __init__(self, source: OcspSource, clock: Clock, date: DateHeader, recorder=None) -> None:
        self.source, self.clock, self.date = source, clock, date
        self.recorder = recorder  # mtlskit.metrics.recorder.Recorder, or None: metrics off
        self._count = recorder.ocsp_reply if recorder is not None else None
        # request bytes -> (DER request, pre-signed reply, second, response bytes, keep-alive)
        self.presigned_memo: dict[bytes, tuple] = {}
        # request bytes before the nonce octets -> (where the body starts, keep-alive, HTTP version)
        self.nonce_memo: dict[bytes, tuple[int, bool, str]] = {}
        self._nonce_heads: dict[tuple, bytes] = {}

    def answer(self, request: Request) -> bytes:
        """The whole HTTP response (status line to body) to one request for /ocsp."""
        if self._count is None:
            return self._answer(request)[2]
        started = _timer()
        reply, _, wire, _ = self._answer(request)
        self._count(reply, _timer() - started)
        return wire

    def one_shot(self, data: bytes) -> bytes | None:
        """The response when ``data`` is one simple /ocsp request that does not keep the
        connection (see :mod:`mtlskit.api.accept`); None otherwise."""
        found = self.simple(data, keep_alive_ok=False)
        return None if found is None else found[0]

    def simple(self, data: bytes, keep_alive_ok: bool = True) -> tuple[bytes, bool, OcspReply | None] | None:
        """(response, keep the connection?, the reply) when ``data`` is exactly one simple
        /ocsp request (see :func:`mtlskit.api.accept.simple_request`); None otherwise, and
        for a keep-alive request unless ``keep_alive_ok``, before anything is answered."""
        count = self._count
        if count is None:
            return self._simple(data, keep_alive_ok)
        started = _timer()
        found = self._simple(data, keep_alive_ok)
        if found is not None:
            count(found[2], _timer() - started)
        return found

    def _simple(self, data: bytes, keep_alive_ok: bool) -> tuple[bytes, bool, OcspReply | None] | None:
        memo = self.presigned_memo.get(data)
        if memo is not None:
            der, reply, second, wire, keep_alive = memo
            if keep_alive and not keep_alive_ok:
                return None
            now = self.clock.now()
            if int(now.timestamp()) == second and self.source.presigned(der, now) is reply:
                return wire, keep_alive, reply
        split = split_nonce(data)
        if split is not None:
            known = self.nonce_memo.get(split[0])
            if known is not None:
                body_start, keep_alive, version = known
                if keep_alive and not keep_alive_ok:
                    return None
                reply = self.source.respond_nonce(split[0][body_start:], split[1])
                if reply is not None:
                    return self._nonce_wire(reply, version, keep_alive), keep_alive, reply
        found = simple_request(data, MAX_BODY, MAX_HEADERS, keep_alive=True)
        if found is None or (found[5] and not keep_alive_ok):
            return None
        method, target, headers, body, version, keep_alive = found
        reply, now, wire, whole = self._answer(Request(method, target, headers, body, keep_alive, version))
        if whole and method == b"POST":
            _remember(self.presigned_memo, data, (body, reply, int(now.timestamp()), wire, keep_alive))
        elif split is not None and method == b"POST" and \
                self.source.knows_nonce_shape(split[0][len(data) - len(body):]):
            _remember(self.nonce_memo, split[0], (len(data) - len(body), keep_alive, version))
        return wire, keep_alive, reply

    def _answer(self, request: Request) -> tuple:
        """(the reply, None for a method OCSP does not use; the clock's time; the response
        bytes; whether they are a pre-signed reply sent whole)."""
        now = self.clock.now()
        try:
            reply = ocsp_http.reply_for(self.source, request.method, request.path, request.body)
        except Exception:  # a bug, not bad input: OCSP clients understand internalError (RFC 6960 §2.3)
            log.exception("OCSP request failed")
            reply = INTERNAL_ERROR
        if reply is None:
            return None, now, render(request, *ocsp_http.METHOD_NOT_ALLOWED, self.date.get()), False
        if_none_match = request.header(b"if-none-match")
        if reply.cacheable and not if_none_match:
            return reply, now, self._presigned_wire(request, reply, now), True
        status, headers, body = 200, ocsp_http.reply_headers(reply, now), reply.body
        if reply.etag and if_none_match and reply.etag.encode() in if_none_match:
            status, body = 304, b""
        return reply, now, render(request, status, headers, b"" if request.method == b"HEAD" else body,
                                  self.date.get()), False

    def _presigned_wire(self, request: Request, reply: OcspReply, now) -> bytes:
        """A pre-signed reply as bytes built once per second and connection kind: the
        common case costs one dict lookup."""
        key = (int(now.timestamp()), request.version, request.keep_alive, request.method == b"HEAD")
        memo = reply.__dict__.get("_wire")  # OcspReply is frozen; this is a memo, not state
        if memo is None or memo[0] != key:
            memo = (key, render(request, 200, ocsp_http.reply_headers(reply, now),
                                b"" if request.method == b"HEAD" else reply.body, self.date.get()))
            reply.__dict__["_wire"] = memo
        return memo[1]

    def _nonce_wire(self, reply: OcspReply, version: str, keep_alive: bool) -> bytes:
        """What :meth:`_answer` writes for a reply signed for one request."""
        date = self.date.get()
        key = (date, len(reply.body), version, keep_alive)
        head = self._nonce_heads.get(key)
        if head is None:
            if len(self._nonce_heads) >= 64:
                self._nonce_heads.clear()
            request = Request(b"POST", b"/ocsp", [], b"", keep_alive, version)
            headers = ocsp_http.reply_headers(reply, self.clock.now())
            head = self._nonce_heads[key] = render(request, 200, headers, b"", date)
        return head + reply.body


def _remember(memo: dict, key: bytes, value: tuple) -> None:
    if len(memo) >= MEMO_ENTRIES:
        memo.clear()
    memo[key] = value
