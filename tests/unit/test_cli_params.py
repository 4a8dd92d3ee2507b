"""cli/params.py: Typer's parameters converted without Pydantic give what Typer's own
adapters give, values and refusals alike (MTLSKIT_REFERENCE_ENCODERS=1 is Typer's)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import pytest
import typer
from typer.testing import CliRunner

from mtlskit.cli import params


def _app() -> typer.Typer:
    """A fresh app (Typer caches each parameter's converter on the command)."""
    app = typer.Typer()

    @app.command()
    def run(name: str = typer.Argument(...), days: Optional[int] = typer.Option(None, "--days"),
            out: Optional[Path] = typer.Option(None, "--out"),
            must: Optional[Path] = typer.Option(None, "--must", exists=True, dir_okay=False),
            dns: List[str] = typer.Option([], "--dns"), files: List[Path] = typer.Option([], "--file"),
            ratio: float = typer.Option(1.0, "--ratio"), flag: bool = typer.Option(False, "--flag")) -> None:
        typer.echo(repr((name, days, out, must, dns, files, ratio, flag)))

    return app


CASES = [
    ["x"], ["x", "--days", "30"], ["x", "--days", "-3"], ["x", "--days", "007"], ["x", "--days", "+5"],
    ["x", "--days", " 5"], ["x", "--days", "1_000"], ["x", "--days", "1.0"], ["x", "--days", "ten"],
    ["x", "--days", "123456789012345678901234"], ["x", "--out", ""], ["x", "--out", "a/"],
    ["x", "--out", "-"], ["x", "--must", "/nonexistent"], ["x", "--must", "/"], ["x", "--must", "/etc/hostname"],
    ["x", "--dns", "a", "--dns", "b"], ["x", "--file", "a", "--file", ""], ["x", "--ratio", "2.5"],
    ["x", "--flag"], ["é"], [""], ["x", "--days"],
]


def _outcome(monkeypatch, argv: list[str], reference: bool) -> tuple:
    if reference:
        monkeypatch.setenv("MTLSKIT_REFERENCE_ENCODERS", "1")
    else:
        monkeypatch.delenv("MTLSKIT_REFERENCE_ENCODERS", raising=False)
    result = CliRunner().invoke(_app(), argv)
    return result.exit_code, result.output


@pytest.mark.parametrize("argv", CASES)
def test_same_values_and_refusals_as_typer(monkeypatch, argv):
    params.install()
    assert _outcome(monkeypatch, argv, False) == _outcome(monkeypatch, argv, True)


def test_plain_types_do_not_build_pydantic_adapters(monkeypatch):
    params.install()
    monkeypatch.delenv("MTLSKIT_REFERENCE_ENCODERS", raising=False)
    from typer import _adapters

    built, typer_build = [], _adapters.try_build_adapter
    monkeypatch.setattr(_adapters, "try_build_adapter", 
                        lambda annotation, parameter_info: built.append(annotation) or typer_build(annotation, parameter_info))
    code, output = _outcome(monkeypatch, ["x", "--days", "3", "--out", "o", "--dns", "d", "--flag"], False)
    assert code == 0 and "('x', 3, PosixPath('o'), None, ['d'], [], 1.0, True)" in output
    assert built == [float]  # the float option alone goes to Typer's adapter


def test_install_is_idempotent():
    from typer import core

    params.install()
    first = core.build_runtime_param
    params.install()
    assert core.build_runtime_param is first and first.mtlskit_direct
