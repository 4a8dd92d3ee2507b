"""What every command shares: global state, consoles, passphrases, durations, JSON output."""

from __future__ import annotations

import atexit
import dataclasses
import datetime as dt
import gc
import getpass
import json
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from mtlskit.clock import FixedClock, SystemClock
from mtlskit.config import load_settings
from mtlskit.errors import BadInput, UsageError

if TYPE_CHECKING:
    from mtlskit.service import Service

PASSPHRASE_ENV = "MTLSKIT_CA_PASSPHRASE"
# Collection thresholds of a CLI run (see short_lived_gc) and Python's own (for serve).
SHORT_LIVED_GC = (100_000, 20, 100)
DEFAULT_GC = gc.get_threshold()


def short_lived_gc() -> None:
    """Tune the garbage collector for a CLI process that runs one command and exits.

    Importing cryptography and Typer creates a few hundred thousand objects
    that live as long as the process; with Python's default thresholds the collector
    walks them again and again while they are created, and once more at exit — a third
    of a short command's wall time. Here it runs a hundred times less often (it still
    collects cycles), and what exists at exit is frozen, not walked. `serve` restores
    the defaults (long_lived_gc).
    """
    gc.set_threshold(*SHORT_LIVED_GC)
    atexit.register(gc.freeze)


def long_lived_gc() -> None:
    """Python's default collection thresholds, for a process that keeps running."""
    gc.set_threshold(*DEFAULT_GC)

# Rich's emoji codes (rich._emoji_replace): ``:name:`` or ``:name-emoji:``/``:name-text:``.
_EMOJI_CODE = re.compile(r"(:(\S*?)(?:(?:\-)(emoji|text))?:)")
# Candidate codes that are certainly not in Rich's emoji table: the minutes and seconds of
# the times we print ("12:00:00Z" holds ":00:"). A unit test checks this against the table.
_NOT_EMOJI = re.compile(r"\d\d")


def _no_emoji(text: str) -> bool:
    """Would Rich leave every ``:name:`` candidate of ``text`` as is? Minutes and seconds
    are answered without Rich; other names (``URI:https://...``) by Rich's emoji table alone
    (~2 ms to import, against ~20 ms for rich.console), as rich._emoji_replace looks them up."""
    names = [m.group(2) for m in _EMOJI_CODE.finditer(text) if _NOT_EMOJI.fullmatch(m.group(2)) is None]
    if not names:
        return True
    from rich._emoji_codes import EMOJI

    return not any(name.lower() in EMOJI for name in names)


# Control characters but the newline: Rich strips or expands them.
_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f]")
# What makes Rich treat a stream that is not a tty as a terminal (colours, widths).
_TERMINAL_ENV = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")


class LazyConsole:
    """``rich.console.Console(soft_wrap=True, highlight=False, ...)``, imported on first need.

    Importing Rich costs about a tenth of the CLI's start-up, and most of what commands
    print is a plain line to a pipe or a file, which Rich writes unchanged. ``print`` writes
    such a line itself; anything Rich would render differently (a terminal, markup, emoji
    codes, control characters, non-ASCII text, tables, other options) goes to the real
    Rich console, created on first use. Every other attribute is the real console's.
    """

    def __init__(self, stderr: bool = False, **options: Any) -> None:
        self._stderr = stderr
        self._options = options
        self._rich = None

    @property
    def rich(self):
        """The real ``rich.console.Console`` (for tables, progress bars, ...)."""
        if self._rich is None:
            from rich.console import Console

            self._rich = Console(stderr=self._stderr, **self._options)
        return self._rich

    @property
    def file(self):
        return self._rich.file if self._rich is not None else (sys.stderr if self._stderr else sys.stdout)

    def print(self, *objects: Any, sep: str = " ", end: str = "\n", style: Any = None,
              markup: bool | None = None, highlight: bool | None = None, **options: Any) -> None:
        """``rich.console.Console.print``; plain text to a non-terminal is written directly."""
        if not options and not highlight and all(isinstance(o, str) for o in objects):
            text = sep.join(objects)
            if self._plain(text + end, markup is not False):
                file = self.file
                file.write(text + end)
                file.flush()
                return
        self.rich.print(*objects, sep=sep, end=end, style=style, markup=markup, highlight=highlight,
                        **options)

    def _plain(self, text: str, markup: bool) -> bool:
        """Would Rich write ``text`` unchanged (no escape codes, no markup, no emoji)?"""
        if self._rich is not None or not text.isascii() or (markup and "[" in text):
            return False
        if _CONTROL.search(text) is not None:
            return False  # Rich strips or expands control characters
        if not _no_emoji(text):
            return False
        if any(os.environ.get(name) is not None for name in _TERMINAL_ENV) or "IPython" in sys.modules:
            return False
        isatty = getattr(self.file, "isatty", None)
        try:
            return isatty is not None and not isatty()
        except ValueError:  # a closed stream: let Rich decide what to do
            return False

    def table(self, headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
        """``rich.table.Table(*headers, box=None)`` with ``rows``, printed.

        Rich takes ~0.3 ms a row (3 s for the 10,000 of `list --expiring 30d`); when it
        would write the table as is (not a terminal, nothing it reads as markup or emoji
        codes, no wider than the console: nothing wraps), the same text is written here:
        each cell padded to its column's width with one space either side.
        """
        widths = [max(map(len, column)) for column in zip(headers, *rows)]
        lines = ["".join([f" {cell:<{width}} " for cell, width in zip(row, widths)]) for row in (headers, *rows)]
        text = "\n".join(lines) + "\n"
        fits = sum(widths) + 2 * len(widths) <= (self._options.get("width") or 0)
        if fits and "[" not in text and self._no_emoji_code(headers, rows) and self._plain(text, False):
            file = self.file
            file.write(text)
            file.flush()
            return
        from rich.table import Table

        table = Table(*headers, box=None)
        for row in rows:
            table.add_row(*row)
        self.rich.print(table)

    @staticmethod
    def _no_emoji_code(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> bool:
        """No cell holds two colons (Rich replaces ``:name:`` codes cell by cell)."""
        return all(cell.count(":") < 2 for row in (headers, *rows) for cell in row if ":" in cell)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.rich, name)


console = LazyConsole(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err_console = LazyConsole(stderr=True, highlight=False, soft_wrap=True)


@dataclasses.dataclass
class State:
    home: Path | None
    debug: bool
    database_url: str | None = None   # --database-url (over MTLSKIT_DATABASE_URL and mtlskit.toml)


def state_of(ctx: typer.Context) -> State:
    root = ctx.find_root()
    return root.obj if isinstance(root.obj, State) else State(None, False)


def settings_of(ctx: typer.Context, **overrides):
    state = state_of(ctx)
    return load_settings(state.home, {"database_url": state.database_url, **overrides})


def open_service(ctx: typer.Context, at: dt.datetime | None = None) -> "Service":
    from mtlskit.service import Service

    clock = FixedClock(at) if at else SystemClock()
    service = Service.open(settings_of(ctx), clock)
    _sweep_interrupted_batches(service)
    return service


def _sweep_interrupted_batches(service: "Service") -> None:
    """Publish or destroy what a killed `issue` batch left staged (issue/journal.py)."""
    from mtlskit.issue.journal import has_journals, sweep

    if has_journals(service.settings.home):  # one directory read on the usual path
        published, destroyed = sweep(service.settings.home, service.inventory, service.clock.now())
        if published or destroyed:
            err_console.print(f"note: an interrupted batch left bundles staged: {published} recorded "
                              f"one(s) moved into place, {destroyed} unrecorded one(s) destroyed with their keys")


MAX_LIST = 16 * 1024 * 1024  # a NAME or SERIAL per line: room for 250,000 of them


def read_input_file(path: Path, what: str = "input", limit: int | None = None) -> bytes:
    """A regular input file of at most ``limit`` bytes (default ``fileio.MAX_INPUT``, 4 MiB;
    see ``fileio.read_input``): a FIFO, a device or a larger file is refused at once."""
    from mtlskit.fileio import MAX_INPUT, InputRefused, read_input

    try:
        return read_input(path, limit or MAX_INPUT)
    except InputRefused as exc:
        raise BadInput(f"cannot read {what} file {path}: {exc}") from None


def read_list_file(path: Path, what: str) -> list[str]:
    """The lines of a UTF-8 list file (at most ``MAX_LIST`` bytes), stripped, without blank
    lines and ``#`` comments: ``issue --from``, ``revoke --from``."""
    data = read_input_file(path, what, MAX_LIST)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput(f"cannot read {what} file {path}: not UTF-8 text") from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def read_secret_file(path: Path, what: str) -> bytes:
    """First line of a private file (mode 0600 or stricter, at most 4 KiB), without its
    newline; refuses empty files and files that others may read."""
    from mtlskit.fileio import MAX_SECRET, InputRefused, read_input

    try:
        data = read_input(path, MAX_SECRET, private=True)
    except InputRefused as exc:
        raise BadInput(f"cannot read {what} file {path}: {exc}",
                       hint=f"chmod 600 {path}" if "others" in str(exc) else None) from None
    secret = data.splitlines()[0] if data.strip() else b""
    if not secret:
        raise BadInput(f"{what} file {path} is empty")
    return secret


def passphrase_source(passphrase_file: Path | None, confirm: bool = False):
    """A callable giving the CA passphrase: file, else $MTLSKIT_CA_PASSPHRASE, else a prompt."""

    def source() -> bytes | None:
        if passphrase_file is not None:
            return read_secret_file(passphrase_file, "passphrase")
        if os.environ.get(PASSPHRASE_ENV):
            return os.environ[PASSPHRASE_ENV].encode()
        if sys.stdin.isatty():
            first = getpass.getpass("CA passphrase: ").encode()
            if confirm and getpass.getpass("Again: ").encode() != first:
                raise BadInput("the two passphrases differ")
            return first or None
        return None

    return source


_DURATION = re.compile(r"\s*([0-9]+)\s*([smhdw]?)\s*", re.ASCII)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "": 86400}
MAX_DURATION = dt.timedelta(days=36525)  # a century: longer than any CA here lives


def parse_duration(text: str, limit: dt.timedelta = MAX_DURATION) -> dt.timedelta:
    """`30d`, `12h`, `2w`, `90` (days): ASCII digits and a unit, at most ``limit``.

    Raises:
        BadInput: not a duration, or longer than ``limit`` (which a datetime could
            not even hold past year 9999).
    """
    match = _DURATION.fullmatch(text.lower())
    if not match:
        raise BadInput(f"{text[:40]!r} is not a duration", hint="use e.g. 30d, 12h, 2w")
    digits = match.group(1).lstrip("0") or "0"
    if len(digits) > 12 or int(digits) * _UNITS[match.group(2)] > limit.total_seconds():
        raise BadInput(f"{text[:40]!r} is too long a duration: at most {limit.days} days",
                       hint="use e.g. 30d, 12h, 2w")
    return dt.timedelta(seconds=int(digits) * _UNITS[match.group(2)])


def parse_time(text: str) -> dt.datetime:
    """ISO 8601 (`2026-01-31`, `2026-01-31T12:00:00Z`); naive means UTC."""
    try:
        value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BadInput(f"{text!r} is not a time", hint="use ISO 8601, e.g. 2026-01-31T12:00:00Z") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def print_json(data: Any) -> None:
    sys.stdout.write(json_text(data) + "\n")


def json_text(data: Any) -> str:
    """``json.dumps(data, indent=2)`` with datetimes and paths as strings.

    With an indent, json runs its pure-Python encoder; a list of flat objects (what
    ``--json`` prints for a batch of thousands) goes through the C encoder instead, whose
    separator puts each member on its own indented line; only the breaks between the
    objects are then rewritten (a raw newline appears nowhere else: strings escape it).
    A member that is a list of scalars (the SANs of `list --json`) is encoded as a
    placeholder string, and its indented text put in its place afterwards.
    """
    if _flat_objects(data):
        data, lists, hole = _with_holes(data)
        text = _FLAT_OBJECTS.encode(data)  # [{"a": 1,\n    "b": 2},\n    {"a": 3, ...}]
        text = "[\n  {\n    " + text[2:-2].replace("},\n    {", "\n  },\n  {\n    ") + "\n  }\n]"
        if lists:
            text = re.sub(f'"{re.escape(hole)}([0-9]+)"', lambda m: _list_text(lists[int(m.group(1))]), text)
        return text
    return json.dumps(data, indent=2, default=_json_default)


def _flat_objects(data: Any) -> bool:
    """A non-empty list of non-empty dicts whose values are scalars or lists of scalars."""
    if type(data) is not list or not data:
        return False
    for item in data:
        if type(item) is not dict or not item:
            return False
        for value in item.values():
            if type(value) is list:
                if any(isinstance(one, (dict, list, tuple)) for one in value):
                    return False
            elif isinstance(value, (dict, list, tuple)):
                return False
    return True


def _with_holes(data: list[dict]) -> tuple[list[dict], list[list], str]:
    """``data`` with each non-empty list member replaced by HOLE + its index in the lists.
    HOLE starts with a NUL and holds 64 random bits: no string of the data can be it."""
    lists: list[list] = []
    hole = "\\u0000" + os.urandom(8).hex()  # as the encoder writes it: \u0000 and hex
    text_hole = "\0" + hole[6:]

    def filled(item: dict) -> dict:
        if not any(type(value) is list and value for value in item.values()):
            return item  # an empty list is written "[]" either way
        copy = dict(item)
        for key, value in item.items():
            if type(value) is list and value:
                copy[key] = f"{text_hole}{len(lists)}"
                lists.append(value)
        return copy

    return [filled(item) for item in data], lists, hole


def _list_text(values: list) -> str:
    """A non-empty list of scalars as ``json.dumps(indent=2)`` writes it inside an object of a list."""
    return "[\n      " + _LIST_ITEMS.encode(values)[1:-1] + "\n    ]"


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(type(value).__name__)


_FLAT_OBJECTS = json.JSONEncoder(default=_json_default, separators=(",\n    ", ": "))
_LIST_ITEMS = json.JSONEncoder(default=_json_default, separators=(",\n      ", ": "))


def print_deployments(results, stream: "LazyConsole" = console) -> None:
    """One line per refreshed deployment (mtlskit.deploy.refresh.RefreshResult); a
    deployment not reached, or whose reload failed, is a ``warning:`` line on stderr."""
    for item in results or []:
        line = f"deployment {item.server} {item.directory}: {item.status.replace('-', ' ')}"
        if item.message:
            line += f" ({item.message})"
        (stream if item.ok else err_console).print(("" if item.ok else "warning: ") + line, markup=False)


def exclusive(**flags: Any) -> None:
    given = [name for name, value in flags.items() if value]
    if len(given) > 1:
        raise UsageError(f"{' and '.join(given)} cannot be used together")


# Subject fields and lifetimes, shared by `init`, `issue`, `sign` and `token create`: each
# command declares the options with these helpers (one definition of names and help) and
# turns the values into a SubjectOptions with subject_options() (one place that validates).

def country_option():
    return typer.Option(None, "--country", help="Subject C: two-letter ISO 3166 code (default: [subject] in mtlskit.toml).")


def state_option():
    return typer.Option(None, "--state", help="Subject ST: state or province (default: [subject]).")


def locality_option():
    return typer.Option(None, "--locality", help="Subject L: city (default: [subject]).")


def org_option():
    return typer.Option(None, "--org", help="Subject O: organization (default: [subject]; '' for none).")


def org_unit_option():
    return typer.Option(None, "--org-unit", help="Subject OU: organizational unit (default: [subject]).")


def hours_option():
    return typer.Option(None, "--hours", help="Lifetime in hours, for short-lived certificates (not with --days).")


def subject_options(ctx: typer.Context | None = None, *, country: str | None = None, state: str | None = None,
                    locality: str | None = None, org: str | None = None, org_unit: str | None = None):
    """The options as a checked ``SubjectOptions``; with ``ctx``, over the ``[subject]``
    defaults of mtlskit.toml (an option given as '' clears its default).

    Raises:
        BadInput: a value outside its rule (see ``pki.names.subject_field``).
    """
    from mtlskit.issue.subject import SubjectOptions, defaults_of

    typed = SubjectOptions.parse(country=country, state=state, locality=locality, org=org, org_unit=org_unit)
    if ctx is None:
        return typed
    return typed.over(defaults_of(settings_of(ctx)))
