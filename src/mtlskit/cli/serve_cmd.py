"""`mtlskit serve`: the OCSP responder, CRLs and CA certificates over HTTP."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import List, Optional

import typer

from mtlskit.cli.common import console, long_lived_gc, passphrase_source, settings_of
from mtlskit.errors import UsageError


def serve(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8080, "--port", help="TCP port (0 picks a free one)."),
    workers: int = typer.Option(
        1, "--workers",
        help="Serving processes sharing the port. 1 (the default) serves cached OCSP and one request per "
             "connection as fast as 2 on a 2-core host; use up to one per core for heavy nonce (signed per "
             "request) traffic. On SQLite every worker answers any revocation on its next request."),
    refresh: Optional[int] = typer.Option(
        None, "--ocsp-refresh-seconds",
        help="Longest time between two reads of the change marker (default 5). SQLite answers a revocation "
             "made by another process on the next request, PostgreSQL within ~150 ms (the change counter)."),
    passphrase_file: Optional[Path] = typer.Option(None, "--passphrase-file", help="CA passphrase file."),
    api: bool = typer.Option(
        False, "--api",
        help="Also serve the REST API under /api/v1 (issue, sign, renew, revoke, list, CRLs, deployments; "
             "OpenAPI at /api/v1/openapi.json). Off by default. Requests need 'Authorization: Bearer <token>' "
             "(a token of `mtlskit token api create`, or the admin token in HOME/api-token, 0600, created on "
             "first use) or, on --tls-port, a client certificate mapped to a role by [roles] in mtlskit.toml."),
    tls_port: Optional[int] = typer.Option(
        None, "--tls-port",
        help="Also serve everything over TLS on this port (0 picks a free one), with enrollment "
             "(POST /api/v1/enroll, see `mtlskit token create`) and remote renewal over mTLS "
             "(POST /api/v1/renew). The server certificate is issued and renewed by serve itself "
             "(HOME/tls/); clients may present a certificate of this CA."),
    tls_names: List[str] = typer.Option([], "--tls-name", help="Extra DNS name of the TLS certificate (repeatable)."),
    tls_ips: List[str] = typer.Option([], "--tls-ip", help="Extra IP address of the TLS certificate (repeatable)."),
    metrics: bool = typer.Option(
        True, "--metrics/--no-metrics",
        help="Serve /metrics (Prometheus; see `mtlskit alerts`) and count OCSP answers and requests. Open on "
             "the listen address unless the metrics_token_file setting names a bearer token file."),
    ui: bool = typer.Option(
        False, "--ui",
        help="Also serve the web UI under /ui/ and print a one-time log-in URL (it becomes a session "
             "cookie). With --tls-port, a client certificate with a role in [roles] logs in directly."),
) -> None:
    """Serve /ocsp (RFC 6960 POST and GET), /crl/<ca>.crl|.pem, /ca/<ca>.pem, /healthz and /metrics.

    OCSP responses are signed by a delegated responder certificate per CA (7 days,
    renewed automatically); creating it needs the CA passphrase once, at start.
    With --api, revocations can be made through the running service (no CLI start-up).
    """
    from mtlskit.api import server, workers as serving
    from mtlskit.api.token import ensure_token, load_token
    from mtlskit.api.wiring import build_worker
    from mtlskit.publish.refresher import CrlRefresher
    from mtlskit.service import Service

    long_lived_gc()  # a server, not a short CLI run
    if workers < 1 or workers > 64:
        raise UsageError("--workers must be between 1 and 64")
    if refresh is not None and refresh < 0:
        raise UsageError("--ocsp-refresh-seconds must be 0 or more")
    # Problems while serving (a failed request, an unreadable inventory) go to stderr.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s mtlskit serve: %(levelname)s %(message)s")
    settings = settings_of(ctx, ocsp_refresh_seconds=refresh)
    metrics_token = _metrics_token(settings) if metrics else None  # a bad file is refused before anything is made
    service = Service.open(settings)
    authority = service.authority(passphrase_source(passphrase_file))
    token_file = ensure_token(settings.home) if api else None
    token = load_token(token_file) if token_file else None
    names = None
    if tls_port is not None:
        from mtlskit.api.tls import TlsNames

        names = TlsNames.for_host(tls_names, tls_ips)
    elif tls_names or tls_ips:
        raise UsageError("--tls-name and --tls-ip need --tls-port")
    ui_setup = _ui_setup(settings, service) if ui else None
    build_worker(service, authority, tls_names=names)  # create or renew responders (and TLS) before forking
    # no CA without a current CRL, and none committed but never published (a failed write)
    published = CrlRefresher(service, authority).publish_due()
    try:
        sock = server.listen(host, port)
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}",
                         hint="pick another --port, or stop what is using it") from None
    tls_sock = _listen_tls(server, host, tls_port) if tls_port is not None else None
    base = _base_url(host, sock.getsockname()[1])
    for line in _banner(base, service.ca_certificates(), workers, token_file):
        console.print(line, markup=False)
    if tls_sock is not None:
        tls_base = _base_url(host, tls_sock.getsockname()[1]).replace("http://", "https://")
        console.print(f"  TLS      {tls_base}  (same routes; POST /api/v1/enroll and /api/v1/renew; "
                      f"certificate in {settings.home / 'tls'})", markup=False)
    if ui_setup is not None:
        _print_ui(ui_setup, base, tls_base if tls_sock is not None else None)
    if published:
        console.print(f"  published the CRL of {', '.join(published)} (missing, not yet published, or past half its life)", markup=False)
    options = _metrics_options(metrics_token) if metrics else None
    metrics_dir = options.directory if options is not None else None
    if metrics:
        console.print(f"  metrics  {base}/metrics" + ("  (bearer token required)" if metrics_token else ""),
                      markup=False)
    sys.stdout.flush()
    try:
        serving.run(sock, lambda: build_worker(Service(settings, service.clock), authority, token, names,
                                               metrics=options, ui=ui_setup), workers, tls_sock=tls_sock)
    finally:
        if metrics_dir is not None:
            import shutil

            shutil.rmtree(metrics_dir, ignore_errors=True)


def _metrics_token(settings) -> str | None:
    """The bearer token /metrics requires (setting metrics_token_file), or None."""
    if not settings.metrics_token_file:
        return None
    from mtlskit.metrics.token import load_metrics_token

    return load_metrics_token(Path(settings.metrics_token_file).expanduser())


def _metrics_options(token: str | None):
    """With the private directory (0700) the workers count in, made before they fork and
    removed at exit."""
    import tempfile

    from mtlskit.metrics.worker import MetricsOptions

    return MetricsOptions(Path(tempfile.mkdtemp(prefix="mtlskit-metrics-")), token)


def _ui_setup(settings, service):
    from mtlskit.ui.setup import UiSetup

    return UiSetup.prepare(settings, service.clock.now().timestamp())


def _print_ui(ui_setup, base: str, tls_base: str | None) -> None:
    # The one secret this command prints, as Jupyter does: it works once, then the session
    # cookie it became is what authenticates (the URL after log-in carries no secret).
    console.print(f"  UI       {base}/ui/login?token={ui_setup.login_link()}  (one-time log-in link)", markup=False)
    if tls_base is not None:
        console.print(f"  UI/TLS   {tls_base}/ui/  (a client certificate with a role in [roles] logs in)", markup=False)


def _listen_tls(server, host: str, port: int):
    try:
        return server.listen(host, port)
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}",
                         hint="pick another --tls-port, or stop what is using it") from None


def _base_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _banner(base: str, cas, workers: int, token_file: Path | None = None) -> list[str]:
    lines = [f"mtlskit serving on {base} ({workers} worker{'s' if workers > 1 else ''}); Ctrl-C stops",
             f"  OCSP     {base}/ocsp  (POST, or GET {base}/ocsp/<base64 request>)"]
    for name in cas:
        lines.append(f"  CA       {base}/ca/{name}.pem")
        lines.append(f"  CRL      {base}/crl/{name}.crl  (DER)  {base}/crl/{name}.pem")
    lines.append(f"  health   {base}/healthz")
    if token_file is not None:  # the path only: the token itself is never printed
        lines.append(f"  API      {base}/api/v1/  (Authorization: Bearer <token of `mtlskit token api create`, "
                     f"or the admin token in {token_file}>)")
        lines.append(f"  OpenAPI  {base}/api/v1/openapi.json")
    return lines


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
