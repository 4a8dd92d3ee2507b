"""`mtlskit issue` and `mtlskit sign`."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import List, Optional

import typer

from mtlskit.cli.common import (console, country_option, err_console, hours_option, locality_option,
                                open_service, org_option, org_unit_option, passphrase_source, print_json,
                                read_input_file, read_list_file, read_secret_file, settings_of, state_option,
                                subject_options)
from mtlskit.errors import Interrupted, UsageError

# The implementation modules are imported inside the commands: every CLI run imports
# every command module (for --help and parsing), and should pay only for the one it runs.

PROGRESS_FROM = 20  # show a progress bar for batches of at least this many


def issue(
    ctx: typer.Context,
    profile: str = typer.Argument(..., help="server | client | peer"),
    names: List[str] = typer.Argument(None, help="Name(s): subject CN and inventory name."),
    dns: List[str] = typer.Option([], "--dns", help="DNS SAN (repeatable)."),
    ip: List[str] = typer.Option([], "--ip", help="IP SAN (repeatable)."),
    email: List[str] = typer.Option([], "--email", help="Email SAN (repeatable)."),
    uri: List[str] = typer.Option([], "--uri", help="URI SAN, e.g. spiffe://org/svc (repeatable)."),
    country: Optional[str] = country_option(),
    state: Optional[str] = state_option(),
    locality: Optional[str] = locality_option(),
    org: Optional[str] = org_option(),
    org_unit: Optional[str] = org_unit_option(),
    days: Optional[int] = typer.Option(None, "--days", help="Lifetime in days (default: the profile's)."),
    hours: Optional[int] = hours_option(),
    key_type: str = typer.Option("ec-p256", "--key-type"),
    out: Optional[Path] = typer.Option(None, "--out", help="Output directory (default ./NAME/)."),
    from_file: Optional[Path] = typer.Option(None, "--from", help="File with one name per line."),
    p12: bool = typer.Option(False, "--p12", help="Also write bundle.p12."),
    p12_profile: str = typer.Option("modern", "--p12-profile", help="modern | legacy (iOS, macOS)"),
    p12_password_file: Optional[Path] = typer.Option(None, "--p12-password-file"),
    key_password_file: Optional[Path] = typer.Option(None, "--key-password-file", help="Encrypt key.pem with this password."),
    passphrase_file: Optional[Path] = typer.Option(None, "--passphrase-file", help="CA passphrase file."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Issue server, client or peer certificates with fresh keys.

    The subject is C, ST, L, O, OU (from the options, else [subject] in mtlskit.toml) and
    CN=NAME; with --from they apply to every NAME of the file.
    """
    from mtlskit.issue.bundle import BundleOptions
    from mtlskit.issue.lifetime import requested_lifetime
    from mtlskit.issue.issuer import IssueRequest, SanRequest
    from mtlskit.issue.profiles import get_profile
    from mtlskit.issue.workflow import issue_batch
    from mtlskit.pki.keys import KeyType
    from mtlskit.pki.pkcs12 import P12Profile

    profile_spec = get_profile(profile)
    requested_lifetime(profile_spec, days, hours)   # refuse bad bounds before reading anything
    subject = subject_options(ctx, country=country, state=state, locality=locality, org=org, org_unit=org_unit)
    if out is not None and str(out) == "-":
        raise UsageError("--out is a directory (a key, a certificate and a chain); - (stdout) cannot hold it",
                         hint="give a directory, or use `mtlskit sign CSR --out -` for a certificate alone")
    all_names = list(names or []) + (read_list_file(from_file, "name list") if from_file else [])
    if not all_names:
        raise UsageError("give at least one NAME, or --from FILE")
    sans = SanRequest(tuple(dns), tuple(ip), tuple(email), tuple(uri))
    batch = len(all_names) > 1 or from_file is not None
    if batch and not sans.empty:
        raise UsageError("--dns/--ip/--email/--uri apply to a single NAME, not to a batch")
    base = out or Path(".")
    directories = [base / n for n in all_names] if batch else [out or Path(all_names[0])]
    options = BundleOptions(
        key_password=read_secret_file(key_password_file, "key password") if key_password_file else None,
        p12=p12, p12_profile=P12Profile.parse(p12_profile),
        p12_password=read_secret_file(p12_password_file, "PKCS#12 password") if p12_password_file else None)
    service = open_service(ctx)
    authority = service.authority(passphrase_source(passphrase_file))
    requests = [IssueRequest(profile_spec, n, sans, subject, days, hours) for n in all_names]
    with _progress(len(all_names), json_out) as advance, _StopOnSignal() as stop:
        try:
            records = issue_batch(service, authority, requests, directories, KeyType.parse(key_type),
                                  options, advance, stop.requested)
        except Interrupted as exc:
            err_console.print(f"error: interrupted by {stop.signal_name}: {len(exc.records)} of {exc.total} "
                              f"certificates issued and recorded under {base}/; the other "
                              f"{exc.total - len(exc.records)} were not issued")
            raise typer.Exit(128 + stop.signum) from None
    if json_out:
        print_json([{"name": r.name, "serial": r.serial_hex, "not_after": r.not_after,
                     "directory": str(d)} for r, d in zip(records, directories)])
        return
    for record, directory in list(zip(records, directories))[:10]:
        console.print(f"issued {record.profile} {record.name}  serial {record.serial_hex}  "
                      f"until {_until(record, hours)}  -> {directory}/")
    if len(records) > 10:
        console.print(f"... and {len(records) - 10} more ({len(records)} in all) under {base}/")
    if p12 and not p12_password_file:
        console.print("PKCS#12 passwords were generated: see bundle.pass (mode 0600) beside each bundle.p12")


class _StopOnSignal:
    """While a batch runs, SIGINT and SIGTERM ask it to stop (it records and publishes what
    is signed, discards the rest) instead of killing the process part-way."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum = 0
        self.previous: dict = {}

    def requested(self) -> bool:
        return self.signum != 0

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    def _handle(self, signum, frame) -> None:
        self.signum = self.signum or signum

    def __enter__(self) -> "_StopOnSignal":
        for signum in self.SIGNALS:
            try:
                self.previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread (an embedding caller): leave them be
                break
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


class _progress:
    """A Rich progress bar on stderr for large batches; a no-op otherwise."""

    def __init__(self, total: int, quiet: bool) -> None:
        self.total = total
        self.bar = None
        if not quiet and total >= PROGRESS_FROM:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("issuing"), BarColumn(), MofNCompleteColumn(),
                                TimeRemainingColumn(), console=err_console.rich, transient=True)

    def __enter__(self):
        if self.bar is None:
            return lambda n: None
        self.bar.start()
        task = self.bar.add_task("issue", total=self.total)
        return lambda n: self.bar.advance(task, n)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()


def sign(
    ctx: typer.Context,
    csr_file: Path = typer.Argument(..., help="CSR, PEM or DER."),
    profile: str = typer.Option(..., "--profile", help="server | client | peer"),
    name: Optional[str] = typer.Option(None, "--name", help="NAME (subject CN, inventory name); default: the CSR's CN if it is a valid NAME."),
    country: Optional[str] = country_option(),
    state: Optional[str] = state_option(),
    locality: Optional[str] = locality_option(),
    org: Optional[str] = org_option(),
    org_unit: Optional[str] = org_unit_option(),
    days: Optional[int] = typer.Option(None, "--days"),
    hours: Optional[int] = hours_option(),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the certificate here; - or none: stdout."),
    passphrase_file: Optional[Path] = typer.Option(None, "--passphrase-file"),
) -> None:
    """Sign a CSR under a profile; the CSR cannot choose its own usage or CA flag.

    The subject keeps the CSR's C, ST, L, O and OU (an option given here replaces the
    CSR's value; [subject] in mtlskit.toml fills what neither gives) and CN=NAME; any other
    subject attribute of the CSR (emailAddress, serialNumber, ...) is left out, with a warning.
    """
    from cryptography.hazmat.primitives import serialization

    from mtlskit.issue.lifetime import requested_lifetime
    from mtlskit.issue.subject import defaults_of

    from mtlskit.fileio import write_atomic
    from mtlskit.issue.csr import sign_csr
    from mtlskit.issue.profiles import get_profile
    from mtlskit.pki.names import check_name

    profile_spec = get_profile(profile)
    requested_lifetime(profile_spec, days, hours)
    if name is not None:
        check_name(name, "--name")
    typed = subject_options(country=country, state=state, locality=locality, org=org, org_unit=org_unit)
    defaults = defaults_of(settings_of(ctx))
    csr_data = read_input_file(csr_file, "CSR")
    service = open_service(ctx)
    authority = service.authority(passphrase_source(passphrase_file))
    dropped: list[str] = []
    certificate, record = sign_csr(service, authority, csr_data, profile_spec, days, name, hours=hours,
                                   subject=typed, defaults=defaults, dropped=dropped)
    if dropped:
        err_console.print(f"warning: left out of the subject (only C, ST, L, O, OU and CN are kept): "
                          f"{', '.join(dropped)}", markup=False)
    pem = certificate.public_bytes(serialization.Encoding.PEM)
    if out is None or str(out) == "-":
        typer.echo(pem.decode(), nl=False)
        return
    write_atomic(out, pem)
    console.print(f"signed {record.profile} {record.name}  serial {record.serial_hex}  "
                  f"until {_until(record, hours)}  -> {out}")


def _until(record, hours: int | None) -> str:
    """The end of validity `issue` and `sign` print: with the hour for --hours (short-lived)."""
    return record.not_after.strftime("%Y-%m-%d %H:%MZ" if hours is not None else "%Y-%m-%d")


def register(app: typer.Typer) -> None:
    app.command("issue")(issue)
    app.command("sign")(sign)
