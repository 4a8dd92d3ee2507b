"""The renew workflow: a successor with everything of the certificate it replaces.

The successor keeps the profile, the whole subject, the SANs, the key type and the lifetime
length (notAfter - notBefore) of its predecessor, all read from the stored certificate,
never from defaults. Local renewal writes the files where the predecessor's were written
(recorded at issuance) or into ``out``:

    stage a complete directory beside it (new files, the old ones as ``*.prev``)
      -> record the successor and mark the predecessor superseded (one transaction)
      -> swap the staged directory with the live one in one rename(2) (RENAME_EXCHANGE)

under the batch journal (issue/journal.py), so a killed renewal is finished or undone by
the next command, and a failure before the record leaves the old files in place. The
predecessor stays valid until it expires; ``revoke_old`` revokes it (reason superseded).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Callable, Sequence

from cryptography import x509

from mtlskit.ca.authority import Authority
from mtlskit.errors import Ambiguous, NotFound, PolicyViolation
from mtlskit.issue.issuer import LeafTemplate, record_of
from mtlskit.issue.profiles import get_profile
from mtlskit.pki import names
from mtlskit.store.inventory import LIVE, CertificateRecord, Status, describe

Progress = Callable[[int], None]
StopRequested = Callable[[], bool]


@dataclasses.dataclass(frozen=True)
class Renewal:
    """One certificate renewed: the one it replaces, the successor, where its files are
    (None when none were written: a remote renewal)."""

    old: CertificateRecord
    new: CertificateRecord
    directory: str | None
    deployments: tuple[str, ...] = ()   # one line per deployment it was installed into


@dataclasses.dataclass(frozen=True)
class Blueprint:
    """What a successor copies from its predecessor, read once from the stored PEM."""

    subject: x509.Name
    sans: list[x509.GeneralName]
    lifetime: dt.timedelta
    key_type: str


def blueprint_of(old: CertificateRecord) -> Blueprint:
    certificate = x509.load_pem_x509_certificate(old.pem.encode("ascii"))
    return Blueprint(certificate.subject, names.sans_of(certificate),
                     certificate.not_valid_after_utc - certificate.not_valid_before_utc,
                     old.key_type)


def blueprint_public_key(old: CertificateRecord):
    """The public key of a stored certificate."""
    return x509.load_pem_x509_certificate(old.pem.encode("ascii")).public_key()


def check_renewable(old: CertificateRecord, now: dt.datetime) -> None:
    """Refuse what must not be renewed: revoked, expired, superseded, CA certificates.

    Raises:
        PolicyViolation: why, with what to do instead.
    """
    status = old.status_at(now)
    what = f"{old.name} (serial {old.serial_hex})"
    if status is Status.REVOKED:
        raise PolicyViolation(f"{what} is revoked ({old.revocation_reason or 'unspecified'}); "
                              "a revoked certificate is not renewed",
                              hint=f"issue a new one: mtlskit issue {old.profile} {old.name}")
    if status is Status.EXPIRED:
        raise PolicyViolation(f"{what} expired on {old.not_after:%Y-%m-%d}; an expired certificate "
                              "is not renewed", hint=f"issue a new one: mtlskit issue {old.profile} {old.name}")
    if old.superseded_by is not None:
        raise PolicyViolation(f"{what} was already renewed: its successor is serial "
                              f"{old.superseded_by:x}", hint=f"renew serial:{old.superseded_by:x}")
    if old.profile not in ("server", "client", "peer"):
        raise PolicyViolation(f"{what} is a {old.profile} certificate; only server, client and "
                              "peer certificates are renewed here")


def select(service, targets: Sequence[str], within: dt.timedelta | None = None,
           every: bool = False, now: dt.datetime | None = None) -> list[CertificateRecord]:
    """What `renew` is asked to renew: each target (``resolve``), or every renewable
    certificate expiring ``within`` from now, or ``every`` renewable one. ``now``: the
    caller's instant (the agent's pass), else the service's clock."""
    now = service.clock.now() if now is None else now
    if within is not None or every:
        before = now + within if within is not None else None
        return service.inventory.renewable(now, before) + _deployed_due(service, now, before)
    chosen: dict[tuple[str, int], CertificateRecord] = {}
    for target in targets:
        record = resolve(service.inventory, target, now)
        chosen.setdefault((record.issuer, record.serial), record)
    return list(chosen.values())


def _deployed_due(service, now: dt.datetime, before: dt.datetime | None) -> list[CertificateRecord]:
    """The live server certificates `deploy` issued (no directory) of each deployed NAME."""
    from mtlskit.deploy.records import list_deployments

    due = []
    for name in sorted({d.name for d in list_deployments(service.inventory)}):
        due += [r for r in service.inventory.by_name(name)
                if r.directory is None and r.superseded_by is None and r.profile in ("server", "peer")
                and r.status_at(now) in LIVE and (before is None or r.not_after <= before)]
    return due


def resolve(inventory, target: str, now: dt.datetime) -> CertificateRecord:
    """The certificate one NAME|serial:HEX designates for renewal: a NAME, its newest
    live certificate that nothing superseded; a serial, that certificate.

    Raises:
        BadInput, AmbiguousTarget, NotFound: see ``Inventory.locate``.
        Ambiguous: a NAME with several live certificates none of which renewed another.
        PolicyViolation: the certificate is revoked, expired, superseded or a CA's.
    """
    found = inventory.locate(target)
    records = list(found.records)
    if found.kind == "serial":
        if len(records) > 1:
            raise Ambiguous(f"{found.target.shown}: this serial was issued by several CAs: {describe(records)}")
        check_renewable(records[0], now)
        return records[0]
    current = [r for r in records if r.status_at(now) in LIVE and r.superseded_by is None]
    if len(current) > 1:
        raise Ambiguous(f"{found.target.shown}: {len(current)} live certificates have this name: "
                        f"{describe(current)}", hint="renew the one you mean by serial:HEX")
    if not current:
        check_renewable(records[-1], now)  # says why the newest cannot be renewed
        raise NotFound(f"{found.target.shown}: no live certificate of this name")
    check_renewable(current[0], now)
    return current[0]


def template_for(service, authority: Authority, old: CertificateRecord, blueprint: Blueprint,
                 now: dt.datetime) -> LeafTemplate:
    return LeafTemplate(authority, get_profile(old.profile), service.settings.public_url, now,
                        None, lifetime=blueprint.lifetime)


def build_successor(service, authority: Authority, old: CertificateRecord, public_key, *,
                    at: dt.datetime | None = None, directory: str | None = None) -> CertificateRecord:
    """Sign (not record) a successor of ``old`` for ``public_key``.

    Raises:
        PolicyViolation: ``old`` may not be renewed, or the successor breaks a policy.
    """
    now = at or service.clock.now()
    check_renewable(old, now)
    blueprint = blueprint_of(old)
    template = template_for(service, authority, old, blueprint, now)
    certificate = template.sign(blueprint.subject, blueprint.sans, public_key)
    record = record_of(certificate, authority.issuing.name, old.name, old.profile, blueprint.sans)
    return dataclasses.replace(record, directory=directory)


def record_successors(service, pairs: Sequence[tuple[CertificateRecord, CertificateRecord]],
                      at: dt.datetime) -> None:
    """Record every successor and mark its predecessor superseded, in one transaction.

    Raises:
        PolicyViolation: a predecessor was revoked or renewed meanwhile (nothing recorded).
    """
    inventory = service.inventory
    with inventory.transaction() as session:
        inventory.add_certificates([new for _, new in pairs], at, action="issue", session=session)
        failed = inventory.mark_superseded_many(session, pairs, at)
        if failed:
            old = failed[0]
            raise PolicyViolation(f"{old.name} (serial {old.serial_hex}) was revoked or renewed "
                                  "meanwhile by another process; nothing was renewed",
                                  hint=f"run `mtlskit show serial:{old.serial_hex}`")


def sign_renewal(service, authority: Authority, old: CertificateRecord, public_key, *,
                 at: dt.datetime | None = None) -> CertificateRecord:
    """Sign a successor of ``old`` for ``public_key``, record it and mark ``old`` superseded,
    in one transaction. Writes no file (remote renewal sends it back; the successor keeps
    no directory).

    Raises:
        PolicyViolation: ``old`` is revoked, expired, superseded or a CA certificate, or the
            successor breaks a policy (lifetime beyond the issuer's, name constraints, key).
    """
    now = at or service.clock.now()
    new = build_successor(service, authority, old, public_key, at=now)
    record_successors(service, [(old, new)], now)
    return new


def renew_certificates(service, authority: Authority, records: Sequence[CertificateRecord], *,
                       reuse_key: bool = False, out: str | None = None, revoke_old: bool = False,
                       progress: Progress | None = None, stop_requested: StopRequested | None = None,
                       deploy: bool = True) -> list[Renewal]:
    """Renew ``records`` and write each successor's files (see the module's docstring);
    with ``deploy``, a renewed server certificate is then installed into the deployments
    of its NAME and their servers reloaded (``Renewal.deployments`` says what happened).

    Raises:
        BadInput, NotFound, PolicyViolation: before anything is signed or written.
        Interrupted: ``stop_requested`` said so; its ``records`` are the renewals done.
    """
    from mtlskit.lifecycle import renew_files

    deployed = _deployed_only(service, records) if deploy and out is None else []
    if deployed:
        return _renew_deployed(service, authority, records, deployed, reuse_key=reuse_key,
                               revoke_old=revoke_old, progress=progress, stop_requested=stop_requested)
    renewals = renew_files.renew_with_files(service, authority, records, reuse_key=reuse_key, out=out,
                                            revoke_old=revoke_old, progress=progress,
                                            stop_requested=stop_requested)
    if not deploy or not any(r.new.profile in ("server", "peer") for r in renewals):
        return renewals
    from mtlskit.deploy.renewal import installed_by_renewal

    return [dataclasses.replace(r, deployments=tuple(lines))
            for r, lines in zip(renewals, installed_by_renewal(service, renewals))]


def _deployed_only(service, records: Sequence[CertificateRecord]) -> list[CertificateRecord]:
    """The server certificates with no recorded directory that a deployment of their NAME
    serves (`deploy` issued them): renewed straight into their deployments."""
    candidates = [r for r in records if r.directory is None and r.profile in ("server", "peer")]
    if not candidates:
        return []
    from mtlskit.deploy.records import list_deployments

    deployed_names = {d.name for d in list_deployments(service.inventory)}
    return [r for r in candidates if r.name in deployed_names]


def _renew_deployed(service, authority: Authority, records, deployed, **options) -> list[Renewal]:
    """Renew the others with their files, then each deployed-only one into its deployments
    (checked first, so a refusal still leaves everything as it was)."""
    from mtlskit.deploy.renewal import renew_into_deployments

    if options["reuse_key"]:
        raise PolicyViolation(f"{deployed[0].name}: --reuse-key reads the key from the directory the "
                              "certificate was issued into, and `deploy` issued this one",
                              hint="renew it without --reuse-key")
    now = service.clock.now()
    for record in deployed:
        check_renewable(record, now)
    ids = {(r.issuer, r.serial) for r in deployed}
    others = [r for r in records if (r.issuer, r.serial) not in ids]
    renewals = renew_certificates(service, authority, others, **options) if others else []
    renewals += [renew_into_deployments(service, authority, record) for record in deployed]
    if options["revoke_old"]:
        from mtlskit.revoke.revoker import revoke

        revoke(service, authority, [f"serial:{r.serial_hex}" for r in deployed], reason="superseded")
    return renewals
