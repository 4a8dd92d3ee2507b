"""Typer's parameter coercion, without Pydantic for the plain types the commands use.

Typer (0.29+) coerces each parameter's value through a Pydantic TypeAdapter that it
builds on first use: importing Pydantic and building the adapters costs 50-70 ms of a
CLI run that is otherwise about 100 ms. For ``bool``, ``str``, ``int``, ``Path`` and lists of
them (every parameter mtlskit has but one float), ``install`` converts directly, with Typer's
own path checks (``coerce_cli_path``); any other type, and any value the direct
conversion does not take as it is (``"+5"``, ``"1_000"``, a path that must exist and
does not, ...), goes to Typer's adapter, so results and error messages stay Typer's.

``MTLSKIT_REFERENCE_ENCODERS=1`` (the switch of the fast paths, see pki/reference.py)
sends every parameter to Typer's adapter, so the suite can run on it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, get_args, get_origin

from mtlskit.pki.reference import reference_encoders

try:
    from typer import core as _typer_core
    from typer._coercion import RuntimeParam, TypeDescriptor
    from typer._param_types import coerce_cli_path
except ImportError:  # pragma: no cover - a Typer without runtime coercion: nothing to replace
    _typer_core = None

_DECIMAL = re.compile(r"-?[0-9]{1,18}\Z")  # what int() and Pydantic read alike


class _Declined(Exception):
    """The direct conversion does not take this value: Typer's adapter decides."""


def install() -> None:
    """Make Typer build its runtime parameters with ``runtime_param`` (once per process)."""
    if _typer_core is None or getattr(_typer_core.build_runtime_param, "mtlskit_direct", False):
        return
    typer_build = _typer_core.build_runtime_param

    def build(descriptor: TypeDescriptor) -> RuntimeParam:
        return runtime_param(descriptor, typer_build)

    build.mtlskit_direct = True  # type: ignore[attr-defined]
    _typer_core.build_runtime_param = build


def runtime_param(descriptor: TypeDescriptor, typer_build: Callable[[TypeDescriptor], RuntimeParam]) -> RuntimeParam:
    """A direct conversion for ``descriptor`` when it has one, else Typer's own."""
    convert = None if reference_encoders() else _converter(descriptor)
    if convert is None:
        return typer_build(descriptor)
    return DirectParam(descriptor.parameter_info, descriptor.annotation, convert,
                       lambda: typer_build(descriptor))


@dataclass(frozen=True)
class DirectParam(RuntimeParam if _typer_core is not None else object):  # type: ignore[misc]
    convert: Callable[[Any, Any, Any], Any]
    typer_param: Callable[[], RuntimeParam]

    def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
        try:
            return self.convert(value, param, ctx)
        except Exception:  # declined, or refused: Typer's adapter gives its own answer
            return self.typer_param()._coerce_value(value, param=param, ctx=ctx)


def _converter(descriptor: TypeDescriptor) -> Callable[[Any, Any, Any], Any] | None:
    info = descriptor.parameter_info
    if descriptor.file_annotation is not None or info.parser is not None or descriptor.is_choice:
        return None
    annotation = descriptor.annotation
    if get_origin(annotation) is list:
        [annotation] = get_args(annotation) or [None]
        item = _leaf(annotation, info, descriptor.is_path)
        return None if item is None else _each(item)
    return _leaf(annotation, info, descriptor.is_path)


def _leaf(annotation: Any, info: Any, is_path: bool) -> Callable[[Any, Any, Any], Any] | None:
    if annotation is str and not is_path:  # a str with path options is Typer's
        return _text
    if annotation is bool:
        return _flag
    if annotation is int and info.min is None and info.max is None:
        return _integer
    if annotation is Path and info.path_type in (None, Path):
        return lambda value, param, ctx: _path(value, info, param, ctx)
    return None


def _text(value: Any, param: Any, ctx: Any) -> str:
    if type(value) is not str:
        raise _Declined
    return value


def _flag(value: Any, param: Any, ctx: Any) -> bool:
    if type(value) is not bool:
        raise _Declined
    return value


def _integer(value: Any, param: Any, ctx: Any) -> int:
    if type(value) is int:
        return value
    if type(value) is not str or not _DECIMAL.match(value):
        raise _Declined
    return int(value)


def _path(value: Any, info: Any, param: Any, ctx: Any) -> Any:
    if type(value) is str:
        value = Path(value)
    elif not isinstance(value, Path):
        raise _Declined
    return coerce_cli_path(value, info, path_type=Path, param=param, ctx=ctx)


def _each(item: Callable[[Any, Any, Any], Any]) -> Callable[[Any, Any, Any], Any]:
    def convert(value: Any, param: Any, ctx: Any) -> list:
        if not isinstance(value, (list, tuple)):
            raise _Declined
        return [item(one, param, ctx) for one in value]
    return convert
