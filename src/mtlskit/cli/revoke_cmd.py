"""`mtlskit revoke` and `mtlskit crl`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from mtlskit.cli.common import (console, err_console, open_service, parse_time, passphrase_source,
                                print_deployments, print_json, read_list_file)
from mtlskit.config import ROOT_CRL_DAYS_MAX
from mtlskit.errors import BadInput, InternalError, NotFound, UsageError
from mtlskit.fileio import write_atomic
from mtlskit.revoke.reasons import RevocationReason

# The publishing and revoking modules (the inventory, the CRL builder) are imported inside
# the commands: every CLI run imports this module, and only these commands need them.
REASON_WORDS = ", ".join(r.value for r in RevocationReason)


def revoke(
    ctx: typer.Context,
    targets: List[str] = typer.Argument(None, help="SERIAL or NAME of each certificate to revoke "
                                        "(serial:HEX or name:NAME when it could be both).",
                                        metavar="SERIAL|NAME..."),
    from_file: Optional[Path] = typer.Option(None, "--from", help="File with one SERIAL, NAME, serial:HEX or name:NAME per line."),
    reason: str = typer.Option("unspecified", "--reason", help=f"One of: {REASON_WORDS}."),
    at: Optional[str] = typer.Option(None, "--at", help="Revocation date, ISO 8601 (default: now)."),
    passphrase_file: Optional[Path] = typer.Option(None, "--passphrase-file", help="CA passphrase file."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Revoke certificates (one transaction) and publish the new CRL of their issuer.

    A NAME means that name's certificate that is neither revoked nor expired; when
    several match, nothing is revoked and their serials are listed. A SERIAL is hex, any
    case, colons optional. An argument that is both a NAME and the serial of another
    certificate is refused: say serial:HEX or name:NAME.
    """
    from mtlskit.publish import crls
    from mtlskit.revoke.revoker import revoke as revoke_certificates

    wanted = list(targets or []) + (read_list_file(from_file, "target list") if from_file else [])
    if not wanted:
        raise UsageError("nothing to revoke", hint="give a SERIAL or NAME, or --from FILE")
    parsed_reason = RevocationReason.parse(reason)
    revoked_at = parse_time(at) if at else None
    service = open_service(ctx)
    authority = service.authority(passphrase_source(passphrase_file))
    result = revoke_certificates(service, authority, wanted, parsed_reason, revoked_at)
    summary = {name: info for name, info in crls.published(service).items() if name in result.crl_ders}
    if json_out:
        print_json({"revoked": [{"serial": r.serial_hex, "name": r.name, "issuer": r.issuer}
                                for r in result.revoked],
                    "republished": [{"serial": r.serial_hex, "name": r.name, "issuer": r.issuer}
                                    for r in result.republished],
                    "reason": result.reason.value, "revoked_at": result.at,
                    "crls": summary, "marker": result.marker, "publication_error": result.error,
                    "deployments": [{"server": d.server, "directory": str(d.directory), "status": d.status,
                                     "message": d.message} for d in result.deployments or []]})
    else:
        _print_revoked(service, result, summary)
    notice = crls.routine_names(service, authority, only_due=True).notice
    if notice:   # the root's CRL is due and its key is offline: say so, once
        err_console.print(f"warning: {notice}", markup=False)
    _raise_if_unpublished(result.error)


def _print_revoked(service, result, summary: dict) -> None:
    for record in result.revoked:
        console.print(f"revoked {record.serial_hex} ({record.name}, {record.issuer}): "
                      f"{result.reason.value} at {result.at:%Y-%m-%dT%H:%M:%SZ}", markup=False)
    for record in result.republished:
        done = "published it now" if result.error is None else "publishing it failed again"
        console.print(f"{record.serial_hex} ({record.name}, {record.issuer}) was already revoked, "
                      f"but its CRL had not been published: {done}", markup=False)
    for name, info in summary.items():
        _print_crl(service, name, info)
    print_deployments(result.deployments, console)


def _raise_if_unpublished(error: str | None) -> None:
    """A revocation recorded but not written to HOME/crl/: say so, and exit non-zero."""
    if error is not None:
        raise InternalError(f"{error}; the revocation is recorded and its CRL is pending",
                            hint="fix that, then run `mtlskit crl` (or revoke again) to publish it")


def _print_crl(service, name: str, info: dict, stream=None) -> None:
    (stream or console).print(
        f"CRL of {name}: number {info['crl_number']}, {info['entries']} revoked, next update "
        f"{info['next_update']:%Y-%m-%d %H:%M}Z -> {service.settings.crl_dir / (name + '.crl')}",
        markup=False)


def crl(
    ctx: typer.Context,
    ca: Optional[str] = typer.Option(None, "--ca", help="root | intermediate[-N] (default: the issuing CA)."),
    fmt: str = typer.Option("pem", "--format", help="pem | der"),
    bundle: bool = typer.Option(False, "--bundle", help="The PEM CRLs of every CA in the chain, in one file."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write here; - or none: stdout."),
    root_crl_days: Optional[int] = typer.Option(None, "--root-crl-days",
                                                help="Lifetime of the root's CRL, 1-3650 days (default: root_crl_days, 365)."),
    passphrase_file: Optional[Path] = typer.Option(None, "--passphrase-file", help="CA passphrase file."),
) -> None:
    """Publish a fresh full CRL for every CA that signs leaves, and output one (or the bundle).

    The root's CRL (it lists only intermediates) lives root_crl_days and is re-signed
    only once half of that has passed, or with --ca root: the root key may stay offline.
    The CRLs are also kept in HOME/crl/ (<ca>.crl, <ca>.pem, bundle.pem). Nginx, Apache
    and HAProxy check every CA of the chain: give them --bundle.
    """
    import dataclasses

    from mtlskit.ca.home import ROOT, is_ca_name
    from mtlskit.publish import crls

    fmt = fmt.lower()
    out = None if out is not None and str(out) == "-" else out
    if fmt not in ("pem", "der"):
        raise BadInput(f"unknown format {fmt!r}", hint="choose pem or der")
    if bundle and fmt == "der":
        raise UsageError("--bundle is PEM only (DER holds one CRL per file)",
                         hint="drop --format der, or use --ca NAME --format der")
    if bundle and ca:
        raise UsageError("--bundle and --ca cannot be used together",
                         hint="--bundle already holds the CRL of every CA")
    if root_crl_days is not None and not 1 <= root_crl_days <= ROOT_CRL_DAYS_MAX:  # checked here: a range
        raise BadInput(f"--root-crl-days must be between 1 and {ROOT_CRL_DAYS_MAX}")   # would load Pydantic
    if ca is not None and not is_ca_name(ca):
        raise BadInput(f"unknown CA {ca!r}", hint="choose root, intermediate or intermediate-N")
    if out is None and fmt == "der" and sys.stdout.isatty():
        raise UsageError("refusing to write DER to a terminal", hint="add --out FILE")
    service = open_service(ctx)
    if root_crl_days is not None:
        service.settings = dataclasses.replace(service.settings, root_crl_days=root_crl_days)
    authority = service.authority(passphrase_source(passphrase_file))
    name = ca or authority.issuing.name
    if name not in authority.signers:
        raise NotFound(f"this CA has no {name} CA", hint=f"CAs here: {', '.join(authority.signers)}")
    routine = crls.routine_names(service, authority)
    wanted = routine.names + [ROOT] * (name == ROOT and ROOT not in routine.names)
    result = crls.publish(service, authority, wanted)
    ders = result.ders
    if bundle:
        data = crls.crl_bundle_pem(service, {n: crls.pem_crl(d) for n, d in ders.items()})
    else:
        der = ders[name] if name in ders else crls.current_crl_der(service, name)
        data = der if fmt == "der" else crls.pem_crl(der)
    status = console if out is not None else err_console
    for ca_name, info in crls.published(service).items():
        if ca_name in ders:
            _print_crl(service, ca_name, info, status)
    if routine.notice and name != ROOT:
        err_console.print(f"warning: {routine.notice}", markup=False)
    print_deployments(result.deployments, status)
    if out is not None:
        write_atomic(out, data)
        console.print(f"wrote {'the CRL bundle' if bundle else f'the CRL of {name}'} to {out}", markup=False)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    _raise_if_unpublished(result.error)


def register(app: typer.Typer) -> None:
    app.command("revoke")(revoke)
    app.command("crl")(crl)
