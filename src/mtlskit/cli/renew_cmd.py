"""`mtlskit renew`."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from mtlskit.cli.common import console, err_console, open_service, parse_duration, passphrase_source, print_json
from mtlskit.errors import Interrupted, UsageError

PROGRESS_FROM = 20  # show a progress bar for at least this many renewals


def renew(
    ctx: typer.Context,
    targets: List[str] = typer.Argument(None, help="NAME or serial:HEX of each certificate to renew.",
                                        metavar="NAME|serial:HEX..."),
    expiring: Optional[str] = typer.Option(None, "--expiring", help="Every certificate expiring within, e.g. 30d."),
    all_: bool = typer.Option(False, "--all", help="Every live certificate with a recorded directory."),
    reuse_key: bool = typer.Option(False, "--reuse-key", help="Keep the key (read from the recorded directory)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the files here instead of the recorded directory."),
    revoke_old: bool = typer.Option(False, "--revoke-old", help="Revoke the replaced certificate (reason superseded)."),
    passphrase_file: Optional[Path] = typer.Option(None, "--passphrase-file", help="CA passphrase file."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Renew certificates: same profile, subject, SANs, key type and lifetime; new key.

    The files are replaced in the directory the certificate was issued into (the previous
    ones kept as *.prev); the old certificate stays valid until it expires, marked
    superseded. A renewed server certificate used by a deployment is installed there and
    the server reloaded.
    """
    from mtlskit.cli.issue_cmd import _StopOnSignal
    from mtlskit.lifecycle.renew import renew_certificates, select

    chosen = sum(bool(x) for x in (targets, expiring, all_))
    if chosen != 1:
        raise UsageError("give NAME|serial:HEX..., or --expiring DURATION, or --all (one of them)")
    if out is not None and (expiring or all_ or len(targets) != 1):
        raise UsageError("--out names one directory: use it with one NAME|serial:HEX")
    if out is not None and str(out) == "-":
        raise UsageError("--out is a directory; - (stdout) cannot hold it")
    within = parse_duration(expiring) if expiring else None
    service = open_service(ctx)
    records = select(service, targets or [], within, all_)
    if not records:
        _print_nothing(json_out, expiring)
        return
    authority = service.authority(passphrase_source(passphrase_file))
    with _progress(len(records), json_out) as advance, _StopOnSignal() as stop:
        try:
            renewals = renew_certificates(service, authority, records, reuse_key=reuse_key,
                                          out=str(out) if out is not None else None, revoke_old=revoke_old,
                                          progress=advance, stop_requested=stop.requested)
        except Interrupted as exc:
            err_console.print(f"error: interrupted by {stop.signal_name}: {len(exc.records)} of {exc.total} "
                              "certificates renewed and recorded; the others were left as they were")
            raise typer.Exit(128 + stop.signum) from None
    _print(renewals, revoke_old, json_out)


def _print_nothing(json_out: bool, expiring: str | None) -> None:
    if json_out:
        print_json([])
    else:
        console.print("nothing to renew" + (f" (nothing expires within {expiring})" if expiring else ""),
                      markup=False)


def _print(renewals, revoke_old: bool, json_out: bool) -> None:
    if json_out:
        print_json([{"name": r.new.name, "serial": r.new.serial_hex, "replaces": r.old.serial_hex,
                     "not_after": r.new.not_after, "directory": r.directory, "old_revoked": revoke_old,
                     "deployments": list(r.deployments)} for r in renewals])
        return
    for r in renewals[:10]:
        console.print(f"renewed {r.new.profile} {r.new.name}  serial {r.new.serial_hex} (replaces "
                      f"{r.old.serial_hex}{', revoked' if revoke_old else ''})  until {r.new.not_after:%Y-%m-%d}"
                      + (f"  -> {r.directory}/" if r.directory else ""), markup=False)
    if len(renewals) > 10:
        console.print(f"... and {len(renewals) - 10} more ({len(renewals)} in all)")
    for r in renewals:
        for line in r.deployments:
            console.print(line, markup=False)


class _progress:
    """A Rich progress bar on stderr for many renewals; a no-op otherwise."""

    def __init__(self, total: int, quiet: bool) -> None:
        self.total, self.bar = total, None
        if not quiet and total >= PROGRESS_FROM:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("renewing"), BarColumn(), MofNCompleteColumn(),
                                TimeRemainingColumn(), console=err_console.rich, transient=True)

    def __enter__(self):
        if self.bar is None:
            return lambda n: None
        self.bar.start()
        task = self.bar.add_task("renew", total=self.total)
        return lambda n: self.bar.advance(task, n)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()


def register(app: typer.Typer) -> None:
    app.command("renew")(renew)
