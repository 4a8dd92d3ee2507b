"""The `mtlskit` command: global options, command registration, the one error handler.

Each command group lives in its own module under ``mtlskit.cli`` and exposes
``register(app)``; COMMAND_MODULES lists them in help order. A run imports only the
module of the command it runs (see modules_for); --help and unknown commands import
them all. This is the only place that turns an exception into an exit code.
"""

from __future__ import annotations

import functools
import importlib
import sys
from pathlib import Path
from typing import Optional

import typer

try:  # typer >= 0.2x ships its own copy of click; its exceptions are not click's
    from typer._click.exceptions import ClickException, NoArgsIsHelpError
except ImportError:  # pragma: no cover - older typer on the real click
    from click.exceptions import ClickException, NoArgsIsHelpError

from mtlskit.cli import params
from mtlskit.cli.common import State, err_console, short_lived_gc
from mtlskit.errors import MtlskitError
from mtlskit.fileio import NotRegularFile

COMMAND_MODULES = [
    "mtlskit.cli.init_cmd",
    "mtlskit.cli.issue_cmd",
    "mtlskit.cli.inventory_cmd",
    "mtlskit.cli.export_cmd",
    "mtlskit.cli.revoke_cmd",
    "mtlskit.cli.serve_cmd",
    "mtlskit.cli.deploy_cmd",
    "mtlskit.cli.verify_cmd",
    "mtlskit.cli.ca_cmd",
    "mtlskit.cli.renew_cmd",
    "mtlskit.cli.token_cmd",
    "mtlskit.cli.enroll_cmd",
    "mtlskit.cli.agent_cmd",
    "mtlskit.cli.backup_cmd",
    "mtlskit.cli.alerts_cmd",
]

# The module of each command whose module is not named after it (``mtlskit.cli.<command>_cmd``
# is found without an entry). A command missing from both is still found: the run then
# imports every command module (slower; tests/integration/test_cli_startup.py notices).
COMMAND_HOMES = {
    "sign": "mtlskit.cli.issue_cmd",
    "list": "mtlskit.cli.inventory_cmd",
    "show": "mtlskit.cli.inventory_cmd",
    "inspect": "mtlskit.cli.inventory_cmd",
    "crl": "mtlskit.cli.revoke_cmd",
    "probe": "mtlskit.cli.verify_cmd",
    "root": "mtlskit.cli.ca_cmd",
    "rotate": "mtlskit.cli.ca_cmd",
    "restore": "mtlskit.cli.backup_cmd",
}


def _root_callback(
    ctx: typer.Context,
    home: Optional[Path] = typer.Option(
        None, "--home", help="CA home directory (default: $MTLSKIT_HOME, else ~/.mtlskit).",
        envvar="MTLSKIT_HOME", show_envvar=True,
    ),
    database_url: Optional[str] = typer.Option(
        None, "--database-url", metavar="URL",
        help="Inventory database: sqlite:///PATH or postgresql://USER@HOST:PORT/DB (default: "
             "$MTLSKIT_DATABASE_URL, else database_url in mtlskit.toml, else SQLite in the home). "
             "Keep the password out of the command line: ~/.pgpass or PGPASSFILE.",
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
) -> None:
    ctx.obj = State(home=home, debug=debug, database_url=database_url)


def modules_for(args: list[str], modules: tuple[str, ...]) -> tuple[str, ...]:
    """The command modules a run with ``args`` needs: the one of its command, or all of
    ``modules`` (for --help, an unknown command or an option before the command that
    only the full parser can judge)."""
    name = _command_name(args)
    if name is None:
        return modules
    for candidate in (f"mtlskit.cli.{name.replace('-', '_')}_cmd", COMMAND_HOMES.get(name)):
        if candidate in modules:
            return (candidate,)
    return modules


_VALUED_GLOBALS = ("--home", "--database-url")


def _command_name(args: list[str]) -> str | None:
    """The first argument after the global options (--home DIR, --database-url URL,
    --debug), if any."""
    position = 0
    while position < len(args):
        arg = args[position]
        if arg in _VALUED_GLOBALS:
            position += 2
        elif arg.startswith(tuple(f"{name}=" for name in _VALUED_GLOBALS)) or arg == "--debug":
            position += 1
        elif arg.startswith("-"):
            return None
        else:
            return arg
    return None


def build_app(modules: tuple[str, ...] | None = None) -> typer.Typer:
    params.install()  # parameters converted without Pydantic where Typer's result is the same
    app = typer.Typer(
        name="mtlskit",
        help="The whole life of mutual TLS: private CA, issuance, inventory, revocation, deployment, diagnosis.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )
    app.callback()(_root_callback)
    for module_name in COMMAND_MODULES if modules is None else modules:
        importlib.import_module(module_name).register(app)
    return app


@functools.lru_cache(maxsize=None)
def _command(modules: tuple[str, ...]):
    """The click command for ``modules`` (some of COMMAND_MODULES), built once per process
    and set of modules: tests run main() thousands of times in one process."""
    return typer.main.get_command(build_app(modules))


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code instead of exiting (so tests run it in-process)."""
    if argv is None:  # a process of its own (the `mtlskit` script, `python -m mtlskit`)
        short_lived_gc()
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    command = _command(modules_for(args, tuple(COMMAND_MODULES)))
    try:
        # Without standalone mode, click hands back the code of a `typer.Exit` raised
        # inside a command instead of raising it.
        returned = command.main(args=args, prog_name="mtlskit", standalone_mode=False)
    except MtlskitError as exc:
        if debug:
            raise
        _print_error(exc.message, exc.hint)
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except NoArgsIsHelpError as exc:
        typer.echo(exc.ctx.get_help() if exc.ctx else exc.format_message())
        return 0
    except typer.Abort:
        _print_error("aborted", None)
        return 2
    except ClickException as exc:
        _print_error(exc.format_message(), "run the command with --help for its usage")
        return 2
    except KeyboardInterrupt:
        _print_error("interrupted", None)
        return 130
    except NotRegularFile as exc:  # an output path that is a device, FIFO or directory
        if debug:
            raise
        _print_error(f"cannot write {exc.filename}: {exc.strerror}", "give the path of a regular file")
        return 2
    except Exception as exc:  # the last line of defence: one line, no traceback
        if debug:
            raise
        _print_error(f"internal error: {type(exc).__name__}", "run again with --debug for the traceback")
        return 5
    return returned if isinstance(returned, int) else 0


def _print_error(message: str, hint: str | None) -> None:
    err_console.print(f"error: {message}", style="red", markup=False, highlight=False)
    if hint:
        err_console.print(f"hint: {hint}", markup=False, highlight=False)
