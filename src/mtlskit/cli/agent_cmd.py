"""`mtlskit agent`: keep every certificate and CRL fresh, once (cron, systemd timer) or
in a loop; `--print-systemd` prints a service unit and a timer that run it."""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path
from typing import Optional

import typer

from mtlskit.cli.common import console, err_console, exclusive, open_service, passphrase_source, print_json
from mtlskit.errors import UsageError

# Implementation modules are imported inside the command (see cli/issue_cmd.py).


def agent(
    ctx: typer.Context,
    once: bool = typer.Option(False, "--once", help="One pass, then exit (for cron and systemd timers); "
                              "exit 1 when something expires within a day."),
    as_json: bool = typer.Option(False, "--json", help="With --once: print what was done as JSON."),
    print_systemd: bool = typer.Option(False, "--print-systemd",
                                       help="Print a systemd service unit and timer for this home, and exit."),
    passphrase_file: Optional[Path] = typer.Option(None, "--passphrase-file", help="CA passphrase file."),
    ca_url: Optional[str] = typer.Option(None, "--ca-url", help="Remote CA (a host without the CA): renew "
                                         "the certificate of --cert-dir over mTLS."),
    cert_dir: Optional[Path] = typer.Option(None, "--cert-dir", help="With --ca-url: the directory "
                                            "holding cert.pem and key.pem."),
) -> None:
    """Renew certificates once 2/3 of their lifetime has passed (with jitter), re-sign
    CRLs past half their life, deliver them to deployments, retry failures with backoff.

    Logs one line per action. Loop mode sleeps until the next thing is due and exits
    cleanly on SIGTERM or SIGINT.
    """
    exclusive(**{"--print-systemd": print_systemd, "--once": once})
    if as_json and not once:
        raise UsageError("--json needs --once", hint="add --once")
    if print_systemd:
        _print_systemd(ctx, passphrase_file, ca_url, cert_dir)
        return
    if ca_url is not None or cert_dir is not None:
        _remote(ca_url, cert_dir, once, as_json)
        return
    from mtlskit.lifecycle.agent import LocalAgent

    local = LocalAgent(open_service(ctx), passphrase_source(passphrase_file), passphrase_file=passphrase_file)
    if once:
        raise typer.Exit(_report(local.run_once(), as_json))
    _loop(local)


def _report(report, as_json: bool) -> int:
    """Print a pass (a line per action, or JSON); 1 when something expires within a day."""
    from mtlskit.lifecycle.agent_report import WARNING_KINDS

    if as_json:
        print_json(report.to_json())
    else:
        for action in report.actions:
            stream = err_console if action.kind in WARNING_KINDS else console
            stream.print(action.line(), markup=False)
    if report.alarms:
        err_console.print(f"error: {len(report.alarms)} certificate(s) expire within a day or have "
                          f"expired: {', '.join(a.target for a in report.alarms[:5])}", markup=False)
        return 1
    return 0


def _loop(local) -> None:
    from mtlskit.cli.common import long_lived_gc
    from mtlskit.lifecycle.agent import run_loop, stop_event_on_signals

    long_lived_gc()
    stop = stop_event_on_signals()
    passes = run_loop(local, wait=stop.wait, log=_log)
    _log(f"agent: stopped after {passes} pass(es)")


def _log(line: str) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    console.print(f"{now:%Y-%m-%dT%H:%M:%SZ} {line}", markup=False)


def _remote(ca_url, cert_dir, once: bool, as_json: bool) -> None:
    if ca_url is None or cert_dir is None:
        raise UsageError("--ca-url and --cert-dir go together", hint="give both, or neither for the local CA")
    from mtlskit.lifecycle.remote_agent import RemoteAgent

    remote = RemoteAgent(ca_url, cert_dir)
    if once:
        raise typer.Exit(_report(remote.run_once(), as_json))
    _loop(remote)


def _print_systemd(ctx, passphrase_file: Path | None, ca_url, cert_dir) -> None:
    from mtlskit.cli.common import settings_of
    from mtlskit.lifecycle.systemd import units

    if (ca_url is None) != (cert_dir is None):
        raise UsageError("--ca-url and --cert-dir go together", hint="give both, or neither for the local CA")
    if ca_url is not None:
        from mtlskit.lifecycle.remote import CaUrl

        CaUrl.parse(ca_url)
        directory = cert_dir.absolute()
        unit, timer = units(_mtlskit_script(), directory, _owner(directory), None, (ca_url, directory))
    else:
        settings = settings_of(ctx)
        unit, timer = units(_mtlskit_script(), settings.home, _owner(settings.home),
                            passphrase_file.resolve() if passphrase_file else None)
    console.print("# mtlskit-agent.service\n" + unit + "\n# mtlskit-agent.timer\n" + timer, markup=False, end="")


def _mtlskit_script() -> Path:
    """The absolute path of the `mtlskit` console script of this installation."""
    beside = Path(sys.executable).parent / "mtlskit"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside.absolute()
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if argv0 is not None and argv0.name == "mtlskit" and argv0.is_file():
        return argv0.absolute()
    raise UsageError(f"cannot find the console script of this installation ({beside})",
                     hint="install the package (pip install) so that its console script exists")


def _owner(home: Path) -> str | None:
    import pwd

    try:
        return pwd.getpwuid(home.stat().st_uid).pw_name
    except (OSError, KeyError):
        return None


def register(app: typer.Typer) -> None:
    app.command("agent")(agent)
