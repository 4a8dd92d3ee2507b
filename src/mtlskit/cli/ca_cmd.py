"""`mtlskit root export-key|import-key` (an offline root) and `mtlskit rotate intermediate`."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Optional

import typer

from mtlskit.cli.common import console, err_console, open_service, passphrase_source, print_deployments

root_app = typer.Typer(help="The root CA's key: keep it off this machine.", no_args_is_help=True)
rotate_app = typer.Typer(help="Rotate a CA.", no_args_is_help=True)

PASSPHRASE_HELP = "CA passphrase file (default: $MTLSKIT_CA_PASSPHRASE, else a prompt)."


@root_app.command("export-key")
def export_key(
    ctx: typer.Context,
    out: Path = typer.Option(..., "--out", help="New file for the root key (0600; never overwritten)."),
    remove: bool = typer.Option(False, "--remove", help="Then remove the key from this machine, once the "
                                "copy opens (with the passphrase) to the root's key."),
    passphrase_file: Optional[Path] = typer.Option(None, "--passphrase-file", help=PASSPHRASE_HELP),
) -> None:
    """Copy the root key (encrypted PKCS#8, as the home keeps it) to FILE; with --remove,
    leave the machine with only the intermediate's key: issuing, renewing, revoking and
    the intermediate's CRL keep working; the root's CRL and rotation need it back."""
    from mtlskit.ca.offline import export_root_key

    service = open_service(ctx)
    source = functools.lru_cache(maxsize=1)(passphrase_source(passphrase_file))  # asked once
    export_root_key(service.ca_files, out, source, remove=remove,
                    before_remove=lambda: _sign_root_crl(service, source))
    console.print(f"wrote the root key to {out} (0600)", markup=False)
    if remove:
        console.print(f"removed {service.ca_files.key_path('root')}: the root key is now only in {out}; "
                      "`mtlskit root import-key` brings it back", markup=False)


def _sign_root_crl(service, source) -> None:
    """Before the root key leaves: a fresh root CRL (and the others' when missing or due),
    so that deployments have every CRL they need for root_crl_days."""
    from mtlskit.ca.home import ROOT
    from mtlskit.publish import crls

    authority = service.authority(source)
    if authority.issuing is authority.root:
        return   # a single CA: its root signs leaves and must stay here anyway
    due = crls.routine_names(service, authority, only_due=True).names
    result = crls.publish(service, authority, sorted({ROOT, *due}))
    state = crls.published(service)[ROOT]
    console.print(f"signed the root CRL: next update {state['next_update']:%Y-%m-%d}Z; "
                  "bring the root key back before then (`mtlskit crl` warns from half-way)", markup=False)
    if result.error:
        err_console.print(f"warning: {result.error}; run `mtlskit crl` to publish it", markup=False)


@root_app.command("import-key")
def import_key(
    ctx: typer.Context,
    key_file: Path = typer.Argument(..., help="The file `root export-key` wrote."),
    passphrase_file: Optional[Path] = typer.Option(None, "--passphrase-file", help=PASSPHRASE_HELP),
) -> None:
    """Put an exported root key back (checked against the root certificate; 0600)."""
    from mtlskit.ca.offline import import_root_key

    service = open_service(ctx)
    import_root_key(service.ca_files, key_file, passphrase_source(passphrase_file))
    console.print(f"the root key is back in {service.ca_files.key_path('root')}", markup=False)


@rotate_app.command("intermediate")
def rotate_intermediate(
    ctx: typer.Context,
    passphrase_file: Optional[Path] = typer.Option(None, "--passphrase-file", help=PASSPHRASE_HELP),
) -> None:
    """Create a new issuing intermediate (needs the root key) and switch issuance to it.

    The old intermediate keeps publishing its CRL and OCSP answers, and every deployment
    trusts both until the old one's certificates are renewed: clients keep working.
    """
    from mtlskit.lifecycle.rotation import rotate_intermediate as rotate

    service = open_service(ctx)
    source = functools.lru_cache(maxsize=1)(passphrase_source(passphrase_file))  # asked once
    rotation = rotate(service, service.authority(source), source)
    new = rotation.new.certificate
    console.print(f"{rotation.new.name} now issues: {new.subject.rfc4514_string()} "
                  f"(until {new.not_valid_after_utc:%Y-%m-%d})", markup=False)
    console.print(f"{rotation.previous.name} is retired: it keeps publishing its CRL and OCSP answers "
                  "for the certificates it issued; renew them to move them over", markup=False)
    print_deployments(rotation.deployments)
    if rotation.crl_error:
        err_console.print(f"warning: {rotation.crl_error}; run `mtlskit crl` to publish it", markup=False)
    console.print("a running `mtlskit serve` answers OCSP and serves the CRL of the new CA within a minute",
                  markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(root_app, name="root")
    app.add_typer(rotate_app, name="rotate")
