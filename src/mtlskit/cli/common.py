"""What every command shares: global state, consoles, passphrases, durations, JSON output."""

from __future__ import annotations

import dataclasses
import datetime as dt
import getpass
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from mtlskit.clock import FixedClock, SystemClock
from mtlskit.config import load_settings
from mtlskit.errors import BadInput, UsageError
from mtlskit.service import Service

console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)
PASSPHRASE_ENV = "MTLSKIT_CA_PASSPHRASE"


@dataclasses.dataclass
class State:
    home: Path | None
    debug: bool


def state_of(ctx: typer.Context) -> State:
    root = ctx.find_root()
    return root.obj if isinstance(root.obj, State) else State(None, False)


def settings_of(ctx: typer.Context, **overrides):
    return load_settings(state_of(ctx).home, overrides)


def open_service(ctx: typer.Context, at: dt.datetime | None = None) -> Service:
    clock = FixedClock(at) if at else SystemClock()
    return Service.open(settings_of(ctx), clock)


def read_secret_file(path: Path, what: str) -> bytes:
    """First line of a file, without its newline; refuses empty files."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BadInput(f"cannot read {what} file {path}: {exc.strerror}") from None
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


_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "": 86400}


def parse_duration(text: str) -> dt.timedelta:
    """`30d`, `12h`, `2w`, `90` (days)."""
    match = _DURATION.match(text.lower())
    if not match:
        raise BadInput(f"{text!r} is not a duration", hint="use e.g. 30d, 12h, 2w")
    return dt.timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


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
    """
    if _flat_objects(data):
        text = _FLAT_OBJECTS.encode(data)  # [{"a": 1,\n    "b": 2},\n    {"a": 3, ...}]
        return "[\n  {\n    " + text[2:-2].replace("},\n    {", "\n  },\n  {\n    ") + "\n  }\n]"
    return json.dumps(data, indent=2, default=_json_default)


def _flat_objects(data: Any) -> bool:
    """A non-empty list of non-empty dicts whose values hold no containers."""
    if type(data) is not list or not data:
        return False
    for item in data:
        if type(item) is not dict or not item:
            return False
        for value in item.values():
            if isinstance(value, (dict, list, tuple)):
                return False
    return True


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(type(value).__name__)


_FLAT_OBJECTS = json.JSONEncoder(default=_json_default, separators=(",\n    ", ": "))


def exclusive(**flags: Any) -> None:
    given = [name for name, value in flags.items() if value]
    if len(given) > 1:
        raise UsageError(f"{' and '.join(given)} cannot be used together")
