"""`mtlskit verify` (offline) and `mtlskit probe` (live): why a certificate or a handshake fails."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from mtlskit.cli.common import console, parse_time, print_json, settings_of
from mtlskit.clock import SystemClock
from mtlskit.errors import CheckFailed, MtlskitError, UsageError

# Implementation modules are imported inside the commands (see cli/issue_cmd.py).
_STYLE = {"error": "red", "warning": "yellow", "info": "green"}  # by mtlskit.verify.findings.Level


def print_findings(findings: list) -> None:
    """One line per ``mtlskit.verify.findings.Finding`` (and its hint)."""
    for f in findings:
        console.print(f"{f.level.value}: {f.message} [{f.code}]", style=_STYLE[f.level.value], markup=False)
        if f.hint:
            console.print(f"  hint: {f.hint}", markup=False)


def _our_ca(ctx: typer.Context):
    """The home's CA (certificates, inventory lookup) when there is one, else None."""
    try:
        from mtlskit.service import Service
        settings = settings_of(ctx)
        service = Service(settings, SystemClock())
        if not service.ca_files.exists():
            return None
        return service
    except (MtlskitError, OSError):  # no readable home: verify and probe work from files alone
        return None


def _inventory_source(service):
    """Revocation as the home's inventory knows it, and the dates of the CRLs it publishes."""
    from mtlskit.errors import NotFound
    from mtlskit.publish.crls import current_crl_der
    from mtlskit.verify.inventory import InventorySource

    def stored_crl(ca_name: str) -> bytes | None:
        try:
            return current_crl_der(service, ca_name)
        except NotFound:
            return None
    return InventorySource(service.ca_certificates(), service.inventory.get, stored_crl)


def _deployed_crl(service, target):
    """The CRL file of the deployment this home recorded at ``target``'s port, if any."""
    from mtlskit.deploy.records import list_deployments
    from mtlskit.verify import files
    from mtlskit.verify.probe import DeployedCrl

    for record in list_deployments(service.inventory):
        host, _, port = str(record.options.get("listen", "")).rpartition(":")
        host = host.strip("[]")
        if port != str(target.port) or host not in ("*", "0.0.0.0", "::", target.host):
            continue
        if record.crl_path.is_file():
            try:
                return DeployedCrl(record.name, record.crl_path, files.load_crls(record.crl_path))
            except MtlskitError:
                return None
    return None


def verify(
    ctx: typer.Context,
    cert: Path = typer.Argument(..., help="Certificate to check (PEM or DER; a fullchain.pem also gives the chain)."),
    purpose: str = typer.Option("client", "--purpose", help="client | server"),
    host: Optional[str] = typer.Option(None, "--host", help="For servers: the name clients connect to."),
    chain: Optional[Path] = typer.Option(None, "--chain", help="Intermediate CA certificate(s) sent with it."),
    ca: Optional[Path] = typer.Option(None, "--ca", help="Trusted CA certificate(s) (default: this home's root)."),
    crl: List[Path] = typer.Option([], "--crl", help="CRL file (repeatable)."),
    use_ocsp: bool = typer.Option(False, "--ocsp", help="Also ask the OCSP responder named in the certificates."),
    no_fetch: bool = typer.Option(False, "--no-fetch", help="Never fetch the CRL a certificate names "
                                  "(done when neither --crl nor this home's inventory covers it)."),
    at: Optional[str] = typer.Option(None, "--at", help="Validate at this time (ISO 8601) instead of now."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Check a certificate: chain, validity, purpose, revocation, chain file."""
    from mtlskit.verify import files
    from mtlskit.verify.checks import Purpose
    from mtlskit.verify.findings import Level
    from mtlskit.verify.ocsp import OcspSource
    from mtlskit.verify.remote import Fallback, NamedUrlsSource
    from mtlskit.verify.verifier import VerifyRequest, verify as run_verify

    try:
        wanted = Purpose(purpose)
    except ValueError:
        raise UsageError(f"unknown purpose {purpose!r}", hint="use --purpose client or --purpose server") from None
    if host and wanted is Purpose.CLIENT:
        raise UsageError("--host is the name a server certificate must match", hint="add --purpose server")
    certs = files.load_certificates(cert)
    chain_certs = files.load_certificates(chain, "chain") if chain else certs[1:]
    service = _our_ca(ctx)
    if ca is not None:
        anchors = files.load_certificates(ca, "CA certificate")
    elif service is not None:
        ours = service.ca_certificates()
        anchors = [ours["root"]]
        if not chain_certs:   # every intermediate, old and new after a rotation: the path builder picks
            chain_certs = [certificate for name, certificate in ours.items() if name != "root"]
    else:
        raise UsageError("no trusted CA given", hint="pass the CA certificate with --ca, or --home of the CA")
    inventory = [_inventory_source(service)] if service is not None else []
    sources = inventory + ([OcspSource()] if use_ocsp else [])
    if not crl and not no_fetch:
        sources.append(Fallback(NamedUrlsSource(crl=True, ocsp=False), before=inventory))
    request = VerifyRequest(
        leaf=certs[0], anchors=anchors, chain=chain_certs, chain_given=bool(chain) or len(certs) > 1,
        crls=[c for path in crl for c in files.load_crls(path)], purpose=wanted, host=host,
        at=parse_time(at) if at else SystemClock().now())
    report = run_verify(request, sources)
    if json_out:
        print_json({"cert": str(cert), "purpose": wanted.value} | report.to_dict())
    else:
        print_findings(report.findings)
    if not report.ok:
        errors = sum(f.level is Level.ERROR for f in report.findings)
        raise CheckFailed(f"verification failed ({errors} error{'s' if errors > 1 else ''})")


def probe(
    ctx: typer.Context,
    target: str = typer.Argument(..., help="https://HOST[:PORT]/PATH or HOST:PORT"),
    cert: Optional[Path] = typer.Option(None, "--cert", help="Client certificate to present (fullchain.pem sends the chain)."),
    key: Optional[Path] = typer.Option(None, "--key", help="Its private key (unencrypted PEM)."),
    ca: Optional[Path] = typer.Option(None, "--ca", help="CA to verify the server with (default: the system store)."),
    servername: Optional[str] = typer.Option(None, "--servername", help="SNI and name to check (default: the URL's host)."),
    timeout: float = typer.Option(5.0, "--timeout", help="Seconds per connection (and per CRL/OCSP fetch)."),
    no_fetch: bool = typer.Option(False, "--no-fetch", help="Never fetch the CRL/OCSP the client certificate "
                                  "names (done when this home's inventory does not know it)."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Connect to a live endpoint and explain why mutual TLS fails (or that it works)."""
    from mtlskit.verify import files
    from mtlskit.verify.findings import Level
    from mtlskit.verify.probe import ProbeRequest, parse_target, probe as run_probe
    from mtlskit.verify.remote import NamedUrlsSource

    if key is not None and cert is None:
        raise UsageError("--key needs --cert")
    if cert is not None and key is None:
        key = cert  # a PEM holding both, as curl --cert accepts
    if cert is not None:  # refused before any connection if not a bounded regular file
        files.load_certificates(cert, "client certificate")
        files.read_file(key, "key")
    parsed, url = parse_target(target, servername)
    if not 0 < timeout <= 300:
        raise UsageError(f"--timeout {timeout} is out of range", hint="give seconds between 0 and 300")
    service = _our_ca(ctx)
    known, revocation, deployed = [], [], None
    if service is not None:
        known = list(service.ca_certificates().values())
        revocation.append(_inventory_source(service))
        deployed = _deployed_crl(service, parsed)
    if not no_fetch:
        revocation.append(NamedUrlsSource(timeout, crl=True, ocsp=True))
    request = ProbeRequest(target=parsed, url=url, at=SystemClock().now(), cert=cert, key=key,
                           anchors=files.load_certificates(ca, "CA certificate") if ca else None,
                           known_cas=known, revocation=revocation, deployed_crl=deployed, timeout=timeout)
    report = run_probe(request)
    if json_out:
        print_json(report.to_dict())
    else:
        console.print(f"{report.url}  {report.tls_version or '-'}  (supports: {', '.join(report.tls_versions) or '-'})",
                      markup=False)
        console.print(f"client certificate: {report.client_auth}; server: {report.server}; "
                      f"HTTP status: {report.http_status if report.http_status is not None else '-'}", markup=False)
        for name in report.acceptable_cas:
            console.print(f"  accepts client certificates from: {name}", markup=False)
        print_findings(report.findings)
    if not report.ok:
        first = next(f for f in report.findings if f.level is Level.ERROR)
        raise CheckFailed(f"mutual TLS with {report.url} fails: {first.code}")


def register(app: typer.Typer) -> None:
    app.command("verify")(verify)
    app.command("probe")(probe)
