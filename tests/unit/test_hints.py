"""No message or hint in src/ names an `mtlskit` command that does not exist (issue 10:
hints said `mtlskit renew` before there was one)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import typer

from mtlskit.cli.app import build_app

SRC = Path(__file__).resolve().parents[2] / "src" / "mtlskit"
COMMAND = re.compile(r"\bmtlskit ([a-z][a-z0-9-]*)")
# "mtlskit <word>" in prose, not a command: keep this list short and obvious.
PROSE = {"settings", "uses", "updates", "serving", "generates", "generated"}


def _strings(tree: ast.AST) -> list[ast.Constant]:
    """Every string constant but docstrings (f-string parts included)."""
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    return [node for node in ast.walk(tree) if isinstance(node, ast.Constant)
            and isinstance(node.value, str) and id(node) not in docstrings]


def named_commands() -> set[tuple[str, int, str]]:
    found = set()
    for path in SRC.rglob("*.py"):
        for node in _strings(ast.parse(path.read_text())):
            for match in COMMAND.finditer(node.value):
                found.add((str(path.relative_to(SRC)), node.lineno, match.group(1)))
    return found


def test_every_command_a_message_names_exists():
    commands = set(typer.main.get_command(build_app()).commands)
    assert {"issue", "crl", "serve", "verify", "probe"} <= commands
    missing = sorted(f"{path}:{line}: mtlskit {word}" for path, line, word in named_commands()
                     if word not in commands and word not in PROSE)
    assert missing == []


def test_the_scan_finds_what_it_looks_for():
    words = {word for _, _, word in named_commands()}
    assert {"issue", "crl", "serve"} <= words
