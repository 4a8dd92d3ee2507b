"""`mtlskit list`, `mtlskit show`, `mtlskit inspect`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from mtlskit.cli.common import console, open_service, parse_duration, print_json, read_input_file, read_secret_file
from mtlskit.clock import SystemClock
from mtlskit.errors import BadInput

# Implementation modules are imported inside the commands (see cli/issue_cmd.py).
SUMMARY_PROFILE = 3  # the index of "profile" in store.inventory.SUMMARY_COLUMNS


def list_(
    ctx: typer.Context,
    expiring: Optional[str] = typer.Option(None, "--expiring", help="Only valid ones expiring within, e.g. 30d."),
    status: Optional[str] = typer.Option(None, "--status", help="valid | not-yet-valid | expired | revoked"),
    profile: Optional[str] = typer.Option(None, "--profile", help="server | client | peer | ocsp | root-ca | intermediate-ca"),
    json_out: bool = typer.Option(False, "--json"),
    all_: bool = typer.Option(False, "--all", help="With --expiring: also the certificates `serve` renews itself (OCSP responders)."),
) -> None:
    """List the inventory, soonest expiry first.

    --expiring leaves out the managed certificates: the OCSP responder certificates that
    `serve` renews itself (--all shows them). Short-lived certificates show hours left.
    """
    from mtlskit.cli.listing import summaries_json, table_rows
    from mtlskit.issue.lifetime import is_managed

    wanted = _status(status) if status is not None else None
    if profile is not None and profile not in _inventory_profiles():
        raise BadInput(f"unknown profile {profile[:40]!r}",
                       hint=f"choose one of: {', '.join(_inventory_profiles())}")
    within = parse_duration(expiring) if expiring is not None else None
    service = open_service(ctx)
    now = service.clock.now()
    before = now + within if within is not None else None
    # stored rows, not records: 10,000 of them within the 150 ms of one process (issue 12)
    rows = service.inventory.summary_rows(now, status=wanted, expiring_before=before, profile=profile)
    left_out = 0
    if within is not None and not all_:
        kept = [row for row in rows if not is_managed(row[SUMMARY_PROFILE])]
        left_out, rows = len(rows) - len(kept), kept
    if json_out:
        sys.stdout.write(summaries_json(rows, now, is_managed) + "\n")
        return
    console.table(("NAME", "PROFILE", "SERIAL", "STATUS", "NOT AFTER", "DAYS"), table_rows(rows, now))
    console.print(f"{len(rows)} certificate(s)" + (f"; {left_out} managed by `serve` (OCSP responders it "
                                                      f"renews itself) left out: --all shows them" if left_out else ""))
    if within is not None:
        _print_cas(service)


def _print_cas(service) -> None:
    """`list --expiring`: the CA certificates too, the issuing one flagged when it expires
    before the leaves it would sign (then rotate it)."""
    from mtlskit.lifecycle.rotation import expiring_cas, longest_leaf_lifetime

    now = service.clock.now()
    console.print("CA certificates:")
    for name, certificate, short in expiring_cas(service):
        line = f"  {name:<15} until {certificate.not_valid_after_utc:%Y-%m-%d %H:%M}  " \
               f"({(certificate.not_valid_after_utc - now).days} days)"
        if short:
            action = "run `mtlskit rotate intermediate`" if name != "root" else "this CA cannot rotate its root"
            line += (f"  warning: expires before the certificates it signs "
                     f"({longest_leaf_lifetime().days} days): {action}")
        console.print(line, markup=False)


def _status(text: str):
    from mtlskit.store.inventory import Status

    try:
        return Status(text)
    except ValueError:
        raise BadInput(f"unknown status {text[:40]!r}",
                       hint=f"choose one of: {', '.join(s.value for s in Status)}") from None


def _inventory_profiles() -> tuple[str, ...]:
    """Every profile the inventory records: the leaf profiles and the CAs' (ca/setup.py)."""
    from mtlskit.issue.profiles import PROFILES

    return (*PROFILES, "root-ca", "intermediate-ca")


def show(
    ctx: typer.Context,
    target: str = typer.Argument(..., help="SERIAL or NAME; serial:HEX or name:NAME when it could be both.",
                                 metavar="SERIAL|NAME"),
    pem: bool = typer.Option(False, "--pem", help="Print the certificate(s) in PEM."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Show what the inventory knows about a certificate (a NAME: its newest one).

    A bare argument that is both a NAME and the serial of another certificate is
    refused: say serial:HEX or name:NAME.
    """
    service = open_service(ctx)
    now = service.clock.now()
    found = service.inventory.locate(target)
    records = list(found.records[-1:] if found.kind == "name" else found.records)
    if pem:
        typer.echo("".join(r.pem for r in records), nl=False)
        return
    if json_out:
        print_json([r.summary(now) | {"pem": r.pem} for r in records])
        return
    for r in records:
        for key, value in r.summary(now).items():
            if value not in (None, []):
                console.print(f"{key:>20}: {', '.join(value) if isinstance(value, list) else value}")
        console.print()
    if len(found.records) > len(records):
        older = ", ".join(r.serial_hex for r in found.records[:-1])
        console.print(f"older certificates of this name: {older} (show serial:HEX)", markup=False)


def inspect(
    file: Path = typer.Argument(..., help="Certificate, CSR, CRL, key or PKCS#12; PEM or DER."),
    password_file: Optional[Path] = typer.Option(None, "--password-file", help="For encrypted keys and PKCS#12."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Summarise any PKI file: subject, SANs, key, usage, validity, fingerprint."""
    from mtlskit.pki.encoding import detect

    data = read_input_file(file)
    password = read_secret_file(password_file, "password") if password_file else None
    summaries = _summaries(detect(data, password), SystemClock().now())
    if json_out:
        print_json(summaries if len(summaries) > 1 else summaries[0])
        return
    for item in summaries:
        _print_summary(item)


def _summaries(loaded, now) -> list[dict]:
    from mtlskit.pki import summary
    from mtlskit.pki.encoding import Kind

    if loaded.kind is Kind.CERTIFICATE:
        return [summary.certificate_summary(c, now) for c in loaded.objects]
    if loaded.kind is Kind.CSR:
        return [summary.csr_summary(loaded.objects[0])]
    if loaded.kind is Kind.CRL:
        return [summary.crl_summary(loaded.objects[0], now)]
    if loaded.kind in (Kind.PRIVATE_KEY, Kind.PUBLIC_KEY):
        return [summary.key_summary(loaded.objects[0], loaded.kind is Kind.PRIVATE_KEY)]
    bundle = loaded.objects[0]
    items = [{"type": "pkcs12", "has_key": bundle.key is not None,
              "friendly_name": (bundle.cert.friendly_name or b"").decode(errors="replace") if bundle.cert else None,
              "certificates": 1 + len(bundle.additional_certs) if bundle.cert else len(bundle.additional_certs)}]
    certs = ([bundle.cert.certificate] if bundle.cert else []) + \
        [c.certificate for c in bundle.additional_certs]
    return items + [summary.certificate_summary(c, now) for c in certs]


def _print_summary(item: dict) -> None:
    console.print(f"[bold]{item['type']}[/bold]")
    for key, value in item.items():
        if key == "type" or value in (None, [], ""):
            continue
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        elif isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        console.print(f"{key:>22}: {value}", markup=False)
    console.print()


def register(app: typer.Typer) -> None:
    app.command("list")(list_)
    app.command("show")(show)
    app.command("inspect")(inspect)
