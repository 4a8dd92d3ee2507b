"""cli.common.LazyConsole: what it writes itself is byte for byte what Rich writes."""

from __future__ import annotations

import contextlib
import io

import pytest
from rich._emoji_codes import EMOJI
from rich.console import Console

from mtlskit.cli import common
from mtlskit.cli.common import LazyConsole

OPTIONS = dict(highlight=False, soft_wrap=True, width=160)  # as cli.common creates them

PLAIN = [("issued client alice  serial 1f  until 2027-01-01  -> out/alice/",), ("",), (),
         ("two", "words"), ("x" * 400,), ("trailing   ",), ("two\nlines",), ("  indented",),
         ("revoked 1f (alice, intermediate): superseded at 2026-01-01T12:00:00Z",),
         ("error: cannot read f: No such file",), ("ends with a newline\n",),
         ("                sans: URI:https://mtlskit.invalid/client/a1",), (":nope-emoji:",), ("x:00-emoji:",)]
RICH = [("[bold]inventory[/bold]",), ("a:b:c",), (":smile:",), (":100:",), ("tab\there",),
        ("caf\u00e9",), ("\u4e2d\u6587" * 90,), ("carriage\rreturn",), (":SMILE:",),
        ("URI:https://a:smile:",)]
CALLS = [{}, {"markup": False}, {"style": "red"}, {"end": ""}, {"sep": ", "}]


def _printed(console_class, args, kwargs, stderr=False):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        console = console_class(stderr=stderr, **OPTIONS)
        console.print(*args, **kwargs)
    return out.getvalue(), err.getvalue(), console


@pytest.mark.parametrize("kwargs", CALLS)
@pytest.mark.parametrize("args", PLAIN + RICH)
def test_output_is_rich_output(args, kwargs):
    assert _printed(LazyConsole, args, kwargs)[:2] == _printed(Console, args, kwargs)[:2]
    assert _printed(LazyConsole, args, kwargs, True)[:2] == _printed(Console, args, kwargs, True)[:2]


@pytest.mark.parametrize("args", PLAIN)
def test_plain_text_to_a_pipe_does_not_create_a_rich_console(args):
    assert _printed(LazyConsole, args, {})[2]._rich is None


@pytest.mark.parametrize("args", RICH)
def test_markup_emoji_and_unusual_text_go_to_rich(args):
    assert _printed(LazyConsole, args, {})[2]._rich is not None


def test_renderables_and_options_go_to_rich():
    from rich.table import Table

    table = Table("A", "B", box=None)
    table.add_row("1", "2")
    for args, kwargs in (((table,), {}), (("x",), {"justify": "right"}), (("x",), {"highlight": True})):
        lazy = _printed(LazyConsole, args, kwargs)
        assert lazy[2]._rich is not None
        assert lazy[:2] == _printed(Console, args, kwargs)[:2]


@pytest.mark.parametrize("variable", ["FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"])
def test_terminal_forcing_environment_goes_to_rich(monkeypatch, variable):
    monkeypatch.setenv(variable, "1")
    lazy = _printed(LazyConsole, ("x",), {"style": "red"})
    assert lazy[2]._rich is not None
    assert lazy[:2] == _printed(Console, ("x",), {"style": "red"})[:2]


def test_two_digit_codes_are_not_emoji():
    """The fast path lets ":00:" (times) through as text: no such emoji in Rich's table."""
    assert not [name for name in EMOJI if common._NOT_EMOJI.fullmatch(name)]


def test_a_uri_san_is_written_without_rich():
    """"URI:https://..." holds the candidate code ":https:": Rich's emoji table says no."""
    out, _, console = _printed(LazyConsole, ("sans: URI:https://mtlskit.invalid/client/a1",), {})
    assert console._rich is None and out == "sans: URI:https://mtlskit.invalid/client/a1\n"


# --- tables (LazyConsole.table: `list`) ---------------------------------------------

HEADERS = ("NAME", "PROFILE", "SERIAL", "STATUS", "NOT AFTER", "DAYS")
ROW = ("alice", "client", "1f", "valid, superseded", "2027-01-01 12:00", "11h")
TABLES = [
    [], [ROW], [ROW, ("b", "server", "ab" * 20, "revoked", "2026-01-01 00:00", "-3")],
    [("n" * 98, *ROW[1:])],                      # 160 wide: the widest written as is
    [("n" * 99, *ROW[1:])],                      # 161: Rich wraps it
    [("[bold]x", *ROW[1:])], [("a:smile:", *ROW[1:])], [("a:b", *ROW[1:4], "a:b", "1")],
    [("caf\u00e9", *ROW[1:])], [("tab\there", *ROW[1:])], [("", "", "", "", "", "")],
]


def _table_by_rich(rows) -> str:
    from rich.table import Table

    table = Table(*HEADERS, box=None)
    for row in rows:
        table.add_row(*row)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        Console(**OPTIONS).print(table)
    return out.getvalue()


@pytest.mark.parametrize("rows", TABLES)
def test_table_is_rich_s_table(rows):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        console = LazyConsole(**OPTIONS)
        console.table(HEADERS, rows)
    assert out.getvalue() == _table_by_rich(rows)


def test_a_plain_table_is_written_without_rich():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        console = LazyConsole(**OPTIONS)
        console.table(HEADERS, [ROW] * 3)
    assert console._rich is None and out.getvalue().count("\n") == 4
