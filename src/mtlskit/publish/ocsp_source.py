"""Where OCSP answers come from: certificate status from the inventory, a cache of
pre-signed responses, and the rules that keep that cache honest.

Built after cfssl's ``ocsp/responder.go``: the HTTP layer hands request bytes to
``OcspSource.respond`` and gets response bytes plus the caching facts RFC 5019 §6.2
wants in HTTP headers; signing lives in :mod:`mtlskit.publish.ocsp`.

Freshness:
- Requests without a nonce get a pre-signed response (RFC 5019 §2.1.1 allows the
  responder to pre-produce them), re-signed once half its validity has passed.
- Requests with a nonce (RFC 8954) are signed on every request, from the cached status.
- Before every answer the source asks the lookup whether the database ``moved()`` (on
  SQLite a read of the WAL-index header, see :mod:`mtlskit.store.changes`; elsewhere
  every ``refresh_seconds``). When it did, it reads the change marker, the highest audit
  event id, and drops from both caches the certificates named by the new events (revoke,
  issue, ...), so a revocation committed by any process sharing the database is answered
  on the next request; one made through this process (``invalidate``) likewise. On
  PostgreSQL the marker is the change counter, polled every ~150 ms by every replica
  (:mod:`mtlskit.store.counter`), and a move drops both caches whole.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import time
from typing import Callable, Iterable, Protocol

from cryptography import x509

from mtlskit.clock import Clock
from mtlskit.errors import BadInput, InternalError
from mtlskit.publish import ocsp
from mtlskit.publish.ocsp import CertStatus, ResponderKey, SingleAnswer

log = logging.getLogger("mtlskit.serve")
RESPONSE_VALIDITY = dt.timedelta(hours=1)
MAX_CACHED_RESPONSES = 50_000  # bound memory against floods of distinct requests


@dataclasses.dataclass(frozen=True)
class CertificateState:
    """What the inventory says about one serial of one CA."""

    status: CertStatus
    revoked_at: dt.datetime | None = None
    reason: x509.ReasonFlags | None = None


class StatusLookup(Protocol):
    """Reads certificate status and the change marker (see InventoryStatusLookup);
    raises InternalError when the store cannot be read."""

    def state(self, issuer: str, serial: int) -> CertificateState: ...

    def change_marker(self) -> int: ...

    def moved(self) -> bool: ...

    def changed_since(self, marker: int) -> tuple[int, set[tuple[str, int]] | None]:
        """(new marker, the (CA name, serial) pairs changed since ``marker``; None: any may have)"""


@dataclasses.dataclass(frozen=True)
class ServedCa:
    """A CA this responder answers for, and its delegated responder."""

    name: str
    certificate: x509.Certificate
    responder: ResponderKey


@dataclasses.dataclass(frozen=True)
class OcspReply:
    """Response bytes and, for a pre-signed response, the RFC 5019 §6.2 caching facts."""

    body: bytes
    this_update: dt.datetime | None = None
    next_update: dt.datetime | None = None
    etag: str | None = None
    # what /metrics counts: the certificate status of a successful response (the worst
    # of its certificates), else the response status
    status: str = "good"

    @property
    def cacheable(self) -> bool:
        return self.next_update is not None

    def max_age(self, now: dt.datetime) -> int:
        """Seconds an HTTP cache may keep the response: never past nextUpdate."""
        if self.next_update is None:
            return 0
        return max(0, int((self.next_update - now).total_seconds()))


@dataclasses.dataclass
class _Cached:
    """A cached value (a pre-signed reply, or a second's ResponseData), the time it is
    good until, and the (CA name, serial) pairs whose change must drop it."""

    value: OcspReply | ocsp.PreparedResponse | ocsp.ReferencePreparedResponse
    refresh_at: dt.datetime
    keys: tuple[tuple[str, int], ...]
    status: str = "good"  # of a PreparedResponse: see OcspReply.status


MALFORMED = OcspReply(ocsp.MALFORMED_REQUEST, status="malformed_request")
UNAUTHORIZED = OcspReply(ocsp.UNAUTHORIZED, status="unauthorized")
TRY_LATER = OcspReply(ocsp.TRY_LATER, status="try_later")
INTERNAL_ERROR = OcspReply(ocsp.INTERNAL_ERROR, status="internal_error")


class OcspSource:
    """Answers OCSP requests for the CAs it serves.

    Args:
        cas: the CAs answered for, each with its delegated responder.
        lookup: certificate status and change marker (the inventory).
        clock: the time for thisUpdate/nextUpdate and cache expiry.
        refresh_seconds: at most this long between two reads of the change marker;
            0 reads it on every request.
        validity: nextUpdate - thisUpdate of every response.
        monotonic: the timer that paces the change-marker reads (injected in tests).
    """

    def __init__(self, cas: Iterable[ServedCa], lookup: StatusLookup, clock: Clock,
                 refresh_seconds: float = 5, validity: dt.timedelta = RESPONSE_VALIDITY,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._lookup = lookup
        self._moved = getattr(lookup, "moved", lambda: False)
        self._clock = clock
        self._refresh = refresh_seconds
        self._validity = validity
        self._monotonic = monotonic
        self._cas: dict[str, ServedCa] = {}
        self._by_issuer_hash: dict[tuple[str, bytes, bytes], str] = {}
        for ca in cas:
            self._add_ca(ca)
        self._states: dict[tuple[str, int], CertificateState] = {}
        self._replies: dict[bytes, _Cached] = {}
        self._bodies: dict[tuple, _Cached] = {}  # nonce path: ResponseData of this second
        # nonce path: request bytes before the nonce octets -> (CA name, CertIDs), see split_nonce
        self._nonce_shapes: dict[bytes, tuple[str, tuple[ocsp.CertId, ...]]] = {}
        self._marker = lookup.change_marker()
        self._next_poll = monotonic() + refresh_seconds

    # --- serving -------------------------------------------------------------------

    def respond(self, request: bytes) -> OcspReply:
        """The DER OCSPResponse for DER request bytes; never raises for bad input.

        When the inventory cannot be read, the answer is tryLater (RFC 6960 §2.3): a
        status that may be stale beyond the refresh bound is never signed.
        """
        return self._or_try_later(self._respond, request)

    def respond_nonce(self, prefix: bytes, nonce: bytes) -> OcspReply | None:
        """``respond(prefix + nonce)`` when ``prefix`` is the part before the nonce octets
        of a request answered before (see :func:`mtlskit.publish.ocsp.split_nonce` and
        :meth:`knows_nonce_shape`): the same request with another nonce, signed without
        being parsed again. None when no such request was answered (or it was forgotten)."""
        return self._or_try_later(self._respond_nonce, prefix, nonce)

    @staticmethod
    def _or_try_later(answer: Callable[..., OcspReply | None], *args) -> OcspReply | None:
        try:
            return answer(*args)
        except InternalError as exc:
            log.warning("answering tryLater: %s", exc.message)
            return TRY_LATER

    def _respond_nonce(self, prefix: bytes, nonce: bytes) -> OcspReply | None:
        self.poll()
        return self._known_shape(prefix, nonce, self._clock.now())

    def _known_shape(self, prefix: bytes, nonce: bytes, now: dt.datetime) -> OcspReply | None:
        """Signed for a request asked before with another nonce (no parsing); None when
        no request starting with ``prefix`` was answered."""
        shape = self._nonce_shapes.get(prefix)
        if shape is None:
            return None
        return self._sign_with_nonce(shape[0], shape[1], now.replace(microsecond=0), nonce)

    def knows_nonce_shape(self, prefix: bytes) -> bool:
        """True when :meth:`respond_nonce` answers requests starting with ``prefix``."""
        return prefix in self._nonce_shapes

    def _respond(self, request: bytes) -> OcspReply:
        self.poll()
        cached = self._replies.get(request)
        now = self._clock.now()
        if cached is not None and now < cached.refresh_at:
            return cached.value
        split = ocsp.split_nonce(request)
        if split is not None:
            known = self._known_shape(split[0], split[1], now)
            if known is not None:
                return known
        try:
            parsed = ocsp.parse_request(request)
        except BadInput:
            return MALFORMED  # RFC 6960 §2.3
        ca = self._ca_for(parsed.cert_ids)
        if ca is None:
            return UNAUTHORIZED  # RFC 6960 §2.3: not a CA this responder serves
        this_update = now.replace(microsecond=0)
        next_update = this_update + self._validity
        if parsed.nonce is not None:  # signed for this request only (RFC 8954)
            if split is not None and ocsp.nonce_ends_request(request, parsed):
                if len(self._nonce_shapes) >= MAX_CACHED_RESPONSES:
                    self._nonce_shapes.clear()
                self._nonce_shapes[split[0]] = (ca.name, parsed.cert_ids)
            return self._sign_with_nonce(ca.name, parsed.cert_ids, this_update, parsed.nonce)
        answers = [self._answer(ca.name, cid) for cid in parsed.cert_ids]
        body = ocsp.build_response(answers, ca.responder, this_update, next_update)
        reply = OcspReply(body, this_update, next_update, f'"{hashlib.sha256(body).hexdigest()[:32]}"',
                          _worst(answers))
        self._remember(request, reply, this_update + self._validity / 2,
                       tuple((ca.name, cid.serial) for cid in parsed.cert_ids))
        return reply

    def presigned(self, request: bytes, now: dt.datetime) -> OcspReply | None:
        """The pre-signed reply that ``respond(request)`` would give now without reading
        anything; None when it has none, or when the change marker is due to be read
        (respond reads it, and answers tryLater if the inventory cannot be read)."""
        if self._monotonic() >= self._next_poll or self._moved():
            self._next_poll = 0.0  # respond() reads the change marker
            return None
        cached = self._replies.get(request)
        return cached.value if cached is not None and now < cached.refresh_at else None

    def _ca_for(self, cert_ids: tuple[ocsp.CertId, ...]) -> ServedCa | None:
        # One response is signed by one responder, which speaks for one CA only.
        names = {self._by_issuer_hash.get((c.hash_name, c.issuer_name_hash, c.issuer_key_hash))
                 for c in cert_ids}
        if len(names) != 1 or None in names:
            return None
        return self._cas[names.pop()]

    def _sign_with_nonce(self, ca_name: str, cert_ids: tuple[ocsp.CertId, ...], this_update: dt.datetime,
                         nonce: bytes) -> OcspReply:
        """A response signed for this request only, echoing its nonce (RFC 8954)."""
        cached = self._prepared(ca_name, cert_ids, this_update)
        return OcspReply(cached.value.sign(nonce), status=cached.status)

    def _prepared(self, ca_name: str, cert_ids: tuple[ocsp.CertId, ...], this_update: dt.datetime) -> _Cached:
        """ResponseData without the nonce (in a _Cached, with its status), reused by nonce
        requests within the same second (producedAt has a resolution of one second anyway)
        and dropped with the statuses."""
        key = (ca_name, *(c.der for c in cert_ids))
        cached = self._bodies.get(key)
        if cached is not None and cached.refresh_at == this_update:
            return cached
        ca = self._cas[ca_name]
        answers = [self._answer(ca_name, cid) for cid in cert_ids]
        prepared = ocsp.prepare_response(answers, ca.responder, this_update, this_update + self._validity)
        if len(self._bodies) >= MAX_CACHED_RESPONSES:
            self._bodies.clear()
        cached = self._bodies[key] = _Cached(prepared, this_update, tuple((ca_name, c.serial) for c in cert_ids),
                                             _worst(answers))
        return cached

    def _answer(self, ca_name: str, cert_id: ocsp.CertId) -> SingleAnswer:
        key = (ca_name, cert_id.serial)
        state = self._states.get(key)
        if state is None:
            if len(self._states) >= MAX_CACHED_RESPONSES:
                self._states.clear()
            state = self._states[key] = self._lookup.state(ca_name, cert_id.serial)
        return SingleAnswer(cert_id, state.status, state.revoked_at, state.reason)

    def _remember(self, request: bytes, reply: OcspReply, refresh_at: dt.datetime,
                  keys: tuple[tuple[str, int], ...]) -> None:
        if len(self._replies) >= MAX_CACHED_RESPONSES:
            self._replies.clear()
        self._replies[request] = _Cached(reply, refresh_at, keys)

    # --- freshness -----------------------------------------------------------------

    def poll(self, force: bool = False) -> None:
        """Read the change marker if the database moved or the refresh interval has
        passed; drop what changed."""
        if not force and self._monotonic() < self._next_poll and not self._moved():
            return
        self._next_poll = self._monotonic() + self._refresh
        if self._lookup.change_marker() == self._marker:
            return
        self._marker, changed = self._lookup.changed_since(self._marker)
        if changed is None:   # the lookup cannot say what changed: all of it may have
            self.forget_all()
        else:
            self.invalidate(changed)

    def forget_all(self) -> None:
        """Forget every cached status and response (read again on the next request)."""
        self._states.clear()
        self._replies.clear()
        self._bodies.clear()

    def invalidate(self, keys: Iterable[tuple[str, int]]) -> None:
        """Forget the status and pre-signed responses of these (CA name, serial) pairs."""
        keys = set(keys)
        if not keys:
            return
        for key in keys:
            self._states.pop(key, None)
        for cache in (self._replies, self._bodies):
            for stale in [k for k, entry in cache.items() if keys.intersection(entry.keys)]:
                del cache[stale]

    def replace_responder(self, ca_name: str, responder: ResponderKey) -> None:
        """Sign with a renewed responder from now on; responses of the old one are dropped."""
        self._cas[ca_name] = dataclasses.replace(self._cas[ca_name], responder=responder)
        self._replies = {r: e for r, e in self._replies.items() if e.keys[0][0] != ca_name}
        self._bodies = {r: e for r, e in self._bodies.items() if e.keys[0][0] != ca_name}

    @property
    def cas(self) -> dict[str, ServedCa]:
        return dict(self._cas)

    def add_ca(self, ca: ServedCa) -> None:
        """Answer for one more CA from now on (a new intermediate, after a rotation)."""
        self._add_ca(ca)

    def _add_ca(self, ca: ServedCa) -> None:
        self._cas[ca.name] = ca
        for hash_name in ocsp.HASHES:
            name_hash, key_hash = ocsp.issuer_hashes(ca.certificate, hash_name)
            self._by_issuer_hash[(hash_name, name_hash, key_hash)] = ca.name


def _worst(answers: list[SingleAnswer]) -> str:
    """The status /metrics counts for a response about these certificates."""
    statuses = {answer.status for answer in answers}
    for status in (CertStatus.REVOKED, CertStatus.UNKNOWN):
        if status in statuses:
            return status.value
    return CertStatus.GOOD.value
