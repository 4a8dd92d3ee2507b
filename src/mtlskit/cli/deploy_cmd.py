"""`mtlskit deploy nginx|apache|haproxy`: mTLS server configuration, written and recorded."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import List, Optional

import typer

from mtlskit.cli.common import console, err_console, open_service, passphrase_source, print_json
from mtlskit.deploy import headers
from mtlskit.errors import BadInput

# Implementation modules are imported inside the commands (see cli/issue_cmd.py).

_STARTS = {
    "nginx": "nginx -p {dir} -c {main}",
    "apache": "apache2 -f {main} -DFOREGROUND",
    "haproxy": "haproxy -f {main} -db >>{dir}/haproxy.log 2>&1",
}
_INCLUDES = {
    "nginx": "include {site};  (in the http {{}} context, e.g. from /etc/nginx/conf.d/; "
             "needs libnginx-mod-http-js and libnginx-mod-http-headers-more-filter)",
    "apache": "Include {site}  (needs mod_ssl, mod_headers, mod_lua, mod_proxy_http)",
    "haproxy": "haproxy -f /etc/haproxy/haproxy.cfg -f {site}  (set tune.ssl.cachesize 0 in its global section)",
}

_STREAM_INCLUDE = "include {site};  (in the main context, outside http {{}}; needs libnginx-mod-stream)"


def deploy(
    ctx: typer.Context,
    server: str = typer.Argument(..., help="nginx | apache | haproxy"),
    name: str = typer.Option(..., "--name", help="Server certificate NAME (issued if the inventory has no valid one)."),
    directory: str = typer.Option(..., "--dir", help="Directory to write keys, bundles and configuration into."),
    listen: str = typer.Option(..., "--listen", help="PORT or HOST:PORT to listen on."),
    upstream: List[str] = typer.Option(["http://127.0.0.1:8000"], "--upstream", help="Backend: http(s)://HOST:PORT; repeat it for a load-balanced pool."),
    mode: str = typer.Option("required", "--mode", help="required | optional"),
    require_on: List[str] = typer.Option([], "--require-on", help="With --mode optional: a path that demands a certificate (repeatable)."),
    revocation: str = typer.Option("crl", "--revocation", help="crl | ocsp | none"),
    route: List[str] = typer.Option([], "--route", help="cn=VALUE:HOST:PORT (also ou=, san=): a verified identity to its own backend (repeatable)."),
    standalone: bool = typer.Option(False, "--standalone", help="Write a complete configuration that runs on its own in the foreground."),
    check: bool = typer.Option(False, "--check", help="Run the server's own config test on the result."),
    reload: Optional[str] = typer.Option(None, "--reload", help="Command run after every CRL change instead of signalling the running server (default; never starts one). socket:PATH = HAProxy admin socket."),
    dns: List[str] = typer.Option([], "--dns", help="DNS SAN of the server certificate, if one is issued (repeatable)."),
    ip: List[str] = typer.Option([], "--ip", help="IP SAN of the server certificate, if one is issued (repeatable)."),
    cert_dir: Optional[Path] = typer.Option(None, "--cert-dir", help="Use the server certificate that `mtlskit issue server` wrote here."),
    passphrase_file: Optional[Path] = typer.Option(None, "--passphrase-file", help="CA passphrase file (to issue the server certificate)."),
    http2: bool = typer.Option(False, "--http2", help="Offer HTTP/2 (ALPN h2) to clients, HTTP/1.1 still accepted."),
    policy: Optional[Path] = typer.Option(None, "--policy", help="nginx: authorise every request by this policy.toml (auth_request to `mtlskit serve` /authz)."),
    authz_url: Optional[str] = typer.Option(None, "--authz-url", help="With --policy: where `mtlskit serve` answers /authz (default: public_url)."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Write mTLS configuration for Nginx, Apache or HAProxy, and record the deployment."""
    from mtlskit.deploy.options import (DeployOptions, check_directory, check_path, parse_listen,
                                        parse_route, parse_upstreams)
    from mtlskit.deploy.authz import check_policy_file
    from mtlskit.deploy.workflow import deploy as deploy_workflow
    from mtlskit.issue.issuer import SanRequest
    from mtlskit.pki.names import check_name

    pool = parse_upstreams(upstream)
    options = DeployOptions(
        server=server.lower(), name=check_name(name, "--name"), directory=check_directory(directory),
        listen=parse_listen(listen), upstream=pool[0], upstreams=pool, http2=http2, mode=mode,
        require_on=tuple(check_path(p) for p in require_on),
        revocation=revocation, routes=tuple(parse_route(r) for r in route), standalone=standalone,
        reload_command=reload, authz_url=authz_url,
        policy=None if policy is None else check_policy_file(policy))
    _check_given_files(cert_dir, passphrase_file)
    service = open_service(ctx)
    result = deploy_workflow(service, options, passphrase_source(passphrase_file), cert_dir, check,
                             SanRequest(dns=tuple(dns), ip=tuple(ip)))
    if json_out:
        print_json(_as_json(result))
        return
    _print(result)
    _print_crl_freshness(result, service.settings.home)
    _print_reload(result.reload)


def _check_given_files(cert_dir: Optional[Path], passphrase_file: Optional[Path]) -> None:
    """Options naming something to read must name something readable, even when this
    run would not need it (an unused --passphrase-file is still a mistake to report)."""
    from mtlskit.pki.names import PATH_SHOWN, shown

    if cert_dir is not None and not _is(stat.S_ISDIR, cert_dir):
        raise BadInput(f"--cert-dir {shown(str(cert_dir), PATH_SHOWN)} is not a directory",
                       hint="give the directory `mtlskit issue server` wrote (key.pem + fullchain.pem)")
    if passphrase_file is not None and not _is(lambda mode: not stat.S_ISDIR(mode), passphrase_file):
        # not only regular files: `--passphrase-file <(pass show ca)` is a pipe
        raise BadInput(f"--passphrase-file {shown(str(passphrase_file), PATH_SHOWN)} is not a readable file")


def _is(kind, path: Path) -> bool:
    """``kind(mode)`` of what ``path`` names; False for what cannot be looked at (too long,
    NUL byte, no permission) rather than an internal error."""
    try:
        return kind(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def _as_json(result) -> dict:
    return {"server": result.options.server, "directory": str(result.options.directory),
            "certificate": {"name": result.certificate.name, "serial": result.certificate.serial_hex,
                            "issued": result.issued, "not_after": result.certificate.not_after,
                            "renewed": result.renewed},
            "files": [str(p) for p in result.files], "reload": result.reload_command,
            "check": None if result.check is None else {"ran": result.check.ran, "ok": result.check.ok,
                                                        "output": result.check.output},
            "headers": list(headers.IDENTITY_HEADERS), "stapling": result.stapling, **result.options.to_json(),
            "published_crls": list(result.published_crls), "crl_next_update": result.crl_next_update,
            "reload_result": None if result.reload is None else {"status": result.reload.status,
                                                                 "message": result.reload.message}}


def _print_crl_freshness(result, home: Path) -> None:
    """How the deployed CRL stays fresh: past its nextUpdate every client is refused."""
    if result.published_crls:
        console.print(f"published the CRL of {', '.join(result.published_crls)} (none was current)", markup=False)
    if result.crl_next_update is None:
        return
    console.print(f"CRL: valid until {result.crl_next_update:%Y-%m-%d %H:%M}Z; after that the server refuses "
                  f"every client unless it is re-signed.", markup=False)
    console.print(f"  keep it fresh: run `mtlskit --home {home} serve` (re-signs it at half its life), "
                  f"or from cron, daily: `0 3 * * * mtlskit --home {home} crl >/dev/null`", markup=False)


def _print_reload(reload) -> None:
    """What deploy did to the running server (a failed reload is a warning on stderr)."""
    if reload is None:
        return
    if reload.ok:
        console.print(f"reload: {reload.status.replace('-', ' ')} ({reload.message})", markup=False)
    else:
        err_console.print(f"warning: {reload.server} {reload.directory}: not reloaded ({reload.message})",
                          markup=False)


def _print(result) -> None:
    from mtlskit.deploy.render import Layout

    options, record = result.options, result.certificate
    layout = Layout(options.directory, options.server)
    if result.renewed:
        console.print(result.renewed, markup=False)
    verb = "issued" if result.issued else "using"
    console.print(f"{verb} server certificate {record.name}  serial {record.serial_hex}  "
                  f"until {record.not_after:%Y-%m-%d}")
    for path in result.files:
        console.print(f"wrote {path}")
    if options.standalone:
        console.print("start: " + _STARTS[options.server].format(dir=layout.directory, main=layout.main))
    else:
        include = _STREAM_INCLUDE if options.tcp and options.server == "nginx" else _INCLUDES[options.server]
        console.print("include: " + include.format(site=layout.site) + _more_modules(options))
    console.print(f"on CRL changes: {result.reload_command or 'no reload command (give --reload)'}")
    if result.stapling:
        console.print(f"OCSP stapling: {result.stapling}")
    console.print("logs: " + _logs(options))
    console.print("upstream headers: " + ", ".join(headers.IDENTITY_HEADERS)
                  + (", X-Client-Authz-Rule" if options.policy else ""))
    if options.policy:
        console.print(f"authz: every request is asked of {options.authz_url}/authz (policy "
                      f"{options.directory}/policy.toml); `mtlskit serve` there must use this home")
    if result.check is not None:      # a failed check raised CheckFailed before we got here
        console.print("check: ok" if result.check.ran else f"check: {result.check.output}")


def _more_modules(options) -> str:
    """Apache modules the pool and HTTP/2 blocks need beyond the usual ones."""
    if options.server != "apache":
        return ""
    extra = (["mod_proxy_balancer", "mod_slotmem_shm", "mod_lbmethod_byrequests"] if len(options.pool) > 1 else [])
    extra += ["mod_http2"] if options.http2 else []
    return f"  (and {', '.join(extra)})" if extra else ""


def _logs(options) -> str:
    from mtlskit.deploy.render import log_files

    if options.server == "haproxy":
        return ("stdout of the foreground process" if options.standalone
                else "the log target of your global section (log global)")
    files = log_files(options)
    return f"{files['access']} (requests), {files['error']} (refused handshakes)"


def register(app: typer.Typer) -> None:
    app.command("deploy")(deploy)
