"""The CRL publishing workflow: sign a fresh full CRL per CA, keep it in the inventory
(``crl_state``) and export it to ``HOME/crl/``.

    HOME/crl/<ca>.crl     DER, what `/crl/<ca>.crl` serves and CRL distribution points name
    HOME/crl/<ca>.pem     the same CRL in PEM
    HOME/crl/bundle.pem   the PEM CRLs of every CA in the chain, root included

(The files themselves, written atomically after the commit: ``mtlskit.publish.crl_files``.)

Why every CA: Nginx (``ssl_crl``), Apache (``SSLCARevocationCheck chain``) and HAProxy
(``crl-file``) check revocation at each level of the chain, and refuse every client
when one CA of the chain has no CRL.

Fast path, two levels. (1) Each revoked certificate's ``revokedCertificates`` element
is encoded once, when it is revoked, and kept in ``crl_entries``; a full rebuild reads
those bytes in one range scan. (2) When the stored CRL is in step with the inventory
(its entry count plus the new revocations equals the revoked count), its entry bytes
are reused as they are and the new entries appended. Either way one more revocation
encodes one entry and re-signs; nothing is decoded into Python objects.

Change detection for other processes (the OCSP responder): every revocation regenerates
the CRL of the issuer in the same transaction, so ``revocation_marker()`` — the sum of
the CRL numbers, one indexed read of a table with one row per CA — changes whenever the
revocation state may have changed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import importlib
import importlib.util
from typing import Iterable, Sequence

from cryptography import x509

from mtlskit.ca.home import ROOT, root_offline_hint
from mtlskit.errors import BadInput, NotFound
from mtlskit.pki.reference import reference_encoders
from mtlskit.publish.crl import (build_crl, encode_entry, encode_entry_reference, entry_extensions,
                                 revoked_entries_content)
from mtlskit.publish.crl_files import (BUNDLE_FILE, chain_names, crl_bundle_pem,  # noqa: F401 (public here)
                                       export_crls, pem_crl, staged_export)
from mtlskit.publish.delivery import deliver
from mtlskit.revoke.reasons import RevocationReason
from mtlskit.store import crl_state as store
from mtlskit.store.crl_state import count_revoked  # noqa: F401 (public here)
from mtlskit.store.deployments import any_deployment
from mtlskit.store.locks import lock_crls
from mtlskit.store.inventory import audit_row, record_events
from mtlskit.store.publication import pending_crls
from mtlskit.store.sql import Tx

REVOKED = "revoked"


# --- the inventory side (runs inside the caller's transaction) -----------------------

@functools.lru_cache(maxsize=None)
def _flag(reason: str | None) -> x509.ReasonFlags | None:
    if not reason:
        return None
    try:
        return RevocationReason.parse(reason).x509_flag
    except BadInput:
        # A word this version does not know (written by something else): publishing the
        # CRL matters more than its reason code, so the entry carries none (unspecified).
        return None


def entry_for(serial: int, revoked_at: dt.datetime, reason: str | None) -> bytes:
    """The encoded CRL entry of a certificate revoked at ``revoked_at`` for ``reason``
    (the stored CLI word, e.g. "key-compromise"; None or "unspecified" carry no code)."""
    return encode_entry(serial, revoked_at, _flag(reason))


def store_entries(session: Tx, issuer: str, entries: Iterable[tuple[int, bytes]]) -> None:
    """Keep the encoded entries ``(serial, der)`` of newly revoked certificates of ``issuer``."""
    store.store_entries(session, issuer, [(format(serial, "x"), der) for serial, der in entries])


def load_entries(session: Tx, issuer: str, revoked: int | None = None) -> list[bytes]:
    """The encoded entries of every revoked certificate of ``issuer``, from the cache.

    The cache is checked against the certificates table by count; when they differ —
    certificates revoked by something other than the revoker (a bulk import), or a cache
    older than the inventory — the issuer's entries are encoded again from the
    certificates table.
    """
    if revoked is None:
        revoked = store.count_revoked(session, issuer)
    entries = store.cached_entries(session, issuer)
    if len(entries) == revoked:
        return entries
    return _reencode_entries(session, issuer)


def _reencode_entries(session: Tx, issuer: str, chunk: int = 50_000) -> list[bytes]:
    """Encode every revoked certificate's entry of ``issuer`` again and refill the cache,
    in serial order and in chunks (on SQLite, a million rows never sit in Python at once)."""
    store.clear_entries(session, issuer)
    entries: list[bytes] = []
    with contextlib.closing(store.revoked_rows(session, issuer, chunk)) as chunks:  # its cursor, now
        for rows in chunks:
            ders = encode_stored_entries(rows)
            entries.extend(ders)
            store.insert_entries(session, [(issuer, row[0], der) for row, der in zip(rows, ders)])
    return entries


def encode_stored_entries(rows: Iterable[tuple]) -> list[bytes]:
    """The CRL entries of rows ``(serial, when, reason)`` as the inventory stores them:
    the serial in hex, the revocation time as a datetime or as SQLite's text of one
    ('YYYY-MM-DD HH:MM:SS.ffffff', naive UTC; an offset, if any, is honoured), the
    reason as its CLI word. Each entry equals ``entry_for``'s, byte for byte.

    Encoded from the stored text (``encode_stored_entries_fast``), or one row at a
    time through ``entry_for`` (``encode_stored_entries_reference``) when
    ``MTLSKIT_REFERENCE_ENCODERS=1``.
    """
    if reference_encoders():
        return encode_stored_entries_reference(rows)
    return encode_stored_entries_fast(rows)


def encode_stored_entries_reference(rows: Iterable[tuple]) -> list[bytes]:
    """``encode_stored_entries`` the straightforward way: each row read into an int, a
    datetime and a reason flag, and encoded by cryptography (``encode_entry_reference``)."""
    entries = []
    for serial, when, reason in rows:
        number = int(serial, 16)
        if number <= 0:
            raise ValueError("serial numbers are positive integers (RFC 5280 4.1.2.2)")
        entries.append(encode_entry_reference(number, _utc(_datetime(when)), _flag(reason)))
    return entries


def _datetime(when: dt.datetime | str) -> dt.datetime:
    # SQLite's text of a datetime, read as SQLAlchemy 2's SQLite DateTime read it (store.sql.utc too)
    return when if isinstance(when, dt.datetime) else dt.datetime.fromisoformat(when)


def encode_stored_entries_fast(rows: Iterable[tuple]) -> list[bytes]:
    """``encode_stored_entries`` with the common row encoded from the stored text itself.

    The common row is encoded here from the stored text itself, about four times faster
    than through ``entry_for``, which gets every other row: "common" is a serial in hex
    without leading zeros (what mtlskit stores), a time written 'YYYY-MM-DD HH:MM:SS'
    with optional fractions and no offset or a zero one (what SQLAlchemy and
    ``isoformat(" ")`` write), and an entry short enough for one-octet lengths
    (X.690 8.1.3.4).
    """
    extensions: dict[str | None, bytes] = {}
    entries: list[bytes] = []
    append = entries.append
    for serial, when, reason in rows:
        try:
            extension = extensions[reason]
        except KeyError:
            extension = extensions[reason] = entry_extensions(_flag(reason))
        try:
            # "-- ::" are the characters at 4, 7, 10, 13 and 16 of 'YYYY-MM-DD HH:MM:SS'
            if when[4:17:3] == "-- ::" and serial[0] != "0":
                moment = _fromisoformat(when)  # checks every field, as reading a datetime did
                octets = _fromhex(serial) if len(serial) % 2 == 0 else _fromhex("0" + serial)
                zone = moment.tzinfo
                # fewer octets than digits / 2: fromhex skipped spaces, which int() refuses
                if (zone is None or zone is _UTC) and 2 * len(octets) >= len(serial):
                    if octets[0] > 0x7F:  # positive: a leading zero octet before the sign bit
                        octets = b"\x00" + octets  # (X.690 8.3.2)
                    digits = when[:19].encode("ascii").translate(None, b"-: ")  # YYYYMMDDHHMMSS
                    # RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050
                    time = (b"\x17\x0d%bZ" % digits[2:] if 1950 <= moment.year <= 2049
                            else b"\x18\x0f%bZ" % digits)
                    length = 2 + len(octets) + len(time) + len(extension)
                    if length < 0x80:  # SEQUENCE { INTEGER serial, Time, [extensions] }
                        append(b"\x30%c\x02%c%b%b%b" % (length, len(octets), octets, time, extension))
                        continue
        except (TypeError, ValueError, IndexError):
            pass  # not a row of the common shape (the general path raises what is wrong)
        append(entry_for(int(serial, 16), _utc(_datetime(when)), reason))
    return entries


_fromisoformat = dt.datetime.fromisoformat
_fromhex = bytes.fromhex
_UTC = dt.timezone.utc


def regenerate(session: Tx, signer, now: dt.datetime, crl_days: int,
               added: Sequence[bytes] = ()) -> bytes:
    """Sign the next full CRL of ``signer``'s CA inside ``session``: bump its CRL number,
    store it in ``crl_state`` and record a "crl" audit event. Returns the DER.

    ``signer`` is the CA's ``mtlskit.ca.signer.Signer``: it signs, its key stays in it. ``added`` are the encoded entries of certificates
    revoked in this same transaction.

    Fast path: when the stored CRL holds exactly the entries revoked before this
    transaction (its entry count plus ``added`` equals the revoked count), its
    revokedCertificates bytes are reused as they are and the new entries appended:
    nothing is decoded or re-encoded. Otherwise the entries come from ``crl_entries``.
    """
    lock_crls(session)   # PostgreSQL: one signer at a time across hosts (re-entrant)
    state = store.crl_state(session, signer.name) or store.CrlStateRow(0, None, None)
    number = state.crl_number + 1
    this_update = now.replace(microsecond=0)
    next_update = this_update + dt.timedelta(days=crl_days)
    revoked = store.count_revoked(session, signer.name)
    entries: list[bytes] | None = None
    if state.der is not None and state.entry_count is not None \
            and state.entry_count + len(added) == revoked:
        try:
            entries = [revoked_entries_content(state.der), *added]  # joined once, by build_crl
        except ValueError:  # not a CRL we can read: rebuild from the entries
            entries = None
    if entries is None:
        entries = load_entries(session, signer.name, revoked)
    der = build_crl(signer, number, this_update, next_update, entries)
    store.save_crl(session, signer.name, number, this_update, next_update, der, revoked)
    record_events(session, [audit_row("crl", now, signer.name, None, crl_number=number, entries=revoked,
                                      next_update=next_update.isoformat())])
    return der


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.timezone.utc)


# --- the workflow ---------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class PublishResult:
    """What one publication did: the new CRLs (DER, by CA name), the bundle written to
    HOME/crl/bundle.pem (None while a CA of the chain has no CRL) and what refreshing
    the deployments returned (None when there was nothing to refresh)."""

    ders: dict[str, bytes]
    bundle: bytes | None
    deployments: object = None
    error: str | None = None   # why HOME/crl/ was not written (the CRLs stay pending)


def publish(service, authority, names: Iterable[str] | None = None) -> PublishResult:
    """Sign a fresh full CRL for every CA of ``authority`` (or only ``names``), store
    them, export them to HOME/crl/ and refresh the deployed CRL bundles.

    Raises:
        NotFound: a name that is not a CA of this home.
    """
    signers = authority.signers
    wanted = list(signers) if names is None else list(names)
    unknown = [name for name in wanted if name not in signers]
    if unknown:
        raise NotFound(f"no CA named {unknown[0]!r} in this home",
                       hint=f"CAs here: {', '.join(signers)}")
    now = service.clock.now()
    pending = {name: der for name, der in pending_crls(service.inventory).items() if name not in wanted}
    with staged_export(service) as export:
        with service.inventory.transaction() as session:
            # Write first, read after: the transaction takes the write lock before it reads
            # the CRL numbers, so two publishers (a cron `crl` and `serve`) queue instead of
            # one failing on a stale snapshot (SQLite) or reusing a CRL number.
            lock_crls(session)   # PostgreSQL: the CRL lock first, before any crl_state row lock
            store.lock_crl_states(session, wanted)
            ders = {name: regenerate(session, signers[name], now, crl_lifetime_days(service, name))
                    for name in wanted}
            export.stage({**pending, **ders})  # written while the transaction commits, in place after it
        delivery = deliver(service, export, refresh_deployments)
    return PublishResult(ders, delivery.bundle, delivery.deployments, delivery.error)


def publish_crls(service, authority, names: Iterable[str] | None = None
                 ) -> dict[str, x509.CertificateRevocationList]:
    """``publish()``, returning the new CRLs by CA name ("root", "intermediate")."""
    return {name: x509.load_der_x509_crl(der)
            for name, der in publish(service, authority, names).ders.items()}


def refresh_deployments(service, bundle_pem: bytes):
    """Hand the new CRL bundle to the deployed web-server configurations.

    Calls ``mtlskit.deploy.refresh.refresh_deployments(service, bundle_pem)`` (the
    deploy package; imported only when a deployment is recorded, and skipped in a build
    without it) and returns its per-deployment results; None when nothing is deployed.
    """
    if importlib.util.find_spec("mtlskit.deploy.refresh") is None:
        return None
    if not any_deployment(service.inventory):
        return None  # nothing deployed: skip importing the deploy package (Jinja2 & co.)
    refresh = importlib.import_module("mtlskit.deploy.refresh")
    return refresh.refresh_deployments(service, bundle_pem)


def published(service) -> dict[str, dict]:
    """Per CA with a stored CRL: its crl_number, this_update, next_update and number of
    entries (without reading the DER)."""
    with service.inventory.read() as tx:
        return store.published_states(tx)


def current_crl_der(service, ca_name: str) -> bytes:
    """The last CRL published for ``ca_name`` (DER), as `/crl/<ca>.crl` serves it.

    Raises:
        NotFound: no such CA, or no CRL was published for it yet.
    """
    with service.inventory.read() as tx:
        der = store.stored_der(tx, ca_name)
    if der is None:
        raise NotFound(f"no CRL published for CA {ca_name!r}",
                       hint="run `mtlskit crl` to publish the CRLs")
    return der


def crl_lifetime_days(service, ca_name: str) -> int:
    """Days from thisUpdate to nextUpdate of ``ca_name``'s CRL: ``root_crl_days`` for a
    root that only certifies intermediates (its CRL needs the root key, which may be kept
    offline), ``crl_days`` for every CA that signs leaves."""
    if ca_name == ROOT and service.ca_files.registry().issuing != ROOT:
        return service.settings.root_crl_days
    return service.settings.crl_days


def due_for_refresh(service, margin: dt.timedelta | None = None) -> list[str]:
    """CA names whose CRL is missing or whose nextUpdate is within ``margin`` (default:
    half that CA's CRL lifetime) — what a long-running `serve` re-publishes."""
    now = service.clock.now()
    stored = published(service)
    due = []
    for name in chain_names(service):
        state = stored.get(name)
        wanted = margin if margin is not None else dt.timedelta(days=crl_lifetime_days(service, name)) / 2
        if state is None or state["next_update"] is None or state["next_update"] - now <= wanted:
            due.append(name)
    return due


@dataclasses.dataclass(frozen=True)
class Routine:
    """What a routine publication (`crl`, serve's refresher, the agent) re-signs: every
    CA that signs leaves, and the root only when its CRL is due and its key is here.
    ``notice`` is one line when the root's CRL is due and its key is not on this machine."""

    names: list[str]
    notice: str | None = None


def routine_names(service, authority, only_due: bool = False) -> Routine:
    """The CAs to re-sign now: those ``due_for_refresh`` (with ``only_due``; default: every
    CA), the root only while its CRL is due for refresh (half its lifetime passed, or
    none) and its key is present."""
    due = due_for_refresh(service) if only_due else None
    names = list(authority.signers) if due is None else list(due)
    root = authority.signers.get(ROOT)
    if root is None or authority.issuing is root or ROOT not in names:
        return Routine(names)
    names.remove(ROOT)
    if ROOT not in (due if due is not None else due_for_refresh(service)):
        return Routine(names)
    if root.key_present:
        return Routine([*names, ROOT])
    state = published(service).get(ROOT)
    when = f"expires {state['next_update']:%Y-%m-%d %H:%M}Z" if state and state["next_update"] \
        else "was never published"
    return Routine(names, f"the root CRL {when} and re-signing it needs the root key, which is not on "
                          f"this machine: {root_offline_hint(service.ca_files.key_path(ROOT))}")


def revocation_marker(service_or_inventory) -> int:
    """A number that changes whenever a certificate is revoked (and whenever a CRL is
    published): the sum of the CRL numbers of every CA. Poll it to invalidate caches
    across processes that share the database; it costs one read of a tiny table."""
    inventory = getattr(service_or_inventory, "inventory", service_or_inventory)
    with inventory.read() as tx:
        return store.crl_number_sum(tx)
