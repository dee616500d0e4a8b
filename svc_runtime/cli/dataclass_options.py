"""Command-line options generated from an options dataclass, so that every default lives in one place.

`with_options(ConvertOptions, FLAGS)` turns ``def convert(options: ConvertOptions, inputs=..., ...)``
into a typer command with one option per dataclass field: its type, default and validation come
from the dataclass, its flag names and help from `FLAGS` (a field without an entry still gets
``--field-name``, so a new field needs no CLI edit; an entry for a removed field is ignored).
An invalid combination is reported by the dataclass's own check, as a usage error (exit 2).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import types
import typing
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Optional, Union

import typer

from svc_runtime.cli.base import ExitCode, fail


@dataclass(frozen=True)
class Flag:
    """How one field shows on the command line: flag names (default ``--field-name``), help, and
    ``parse``, a function applied to the typed value before the dataclass sees it."""

    names: tuple[str, ...] = ()
    help: str = ""
    parse: Callable[[Any], Any] | None = None


def _cli_type(annotation: Any) -> tuple[Any, bool]:
    """(type typer can parse, whether None is allowed) for a dataclass field's annotation."""
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(args) < len(typing.get_args(annotation))
        inner = args[0] if len(args) == 1 else str  # str | int: parsed by the flag's `parse`
        return _cli_type(inner)[0], optional
    if origin is typing.Literal:
        return str, False
    return annotation, False


def _flag_names(field: dataclasses.Field, flag: Flag, cli_type: Any) -> tuple[str, ...]:
    if flag.names:
        return flag.names
    dashed = "--" + field.name.replace("_", "-")
    if cli_type is bool and field.default is True:
        return (f"{dashed}/--no-{dashed[2:]}",)
    return (dashed,)


def _field_default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return ...


def _option_parameters(
    cls: type, flags: Mapping[str, Flag], skip: Collection[str] = ()
) -> list[inspect.Parameter]:
    """One keyword-only typer parameter per field of ``cls`` (except ``skip``), in field order."""
    hints = typing.get_type_hints(cls)
    parameters = []
    for field in dataclasses.fields(cls):
        if field.name in skip or not field.init:
            continue
        flag = flags.get(field.name, Flag())
        cli_type, optional = _cli_type(hints[field.name])
        default = _field_default(field)
        annotation = Optional[cli_type] if optional else cli_type
        option = typer.Option(default, *_flag_names(field, flag, cli_type), help=flag.help or None,
                              show_default=default is not None)
        parameters.append(inspect.Parameter(field.name, inspect.Parameter.KEYWORD_ONLY, default=option,
                                            annotation=annotation))
    return parameters


def with_options(
    cls: type, flags: Mapping[str, Flag], skip: Collection[str] = (), parameter: str = "options"
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate ``command(options: cls, **other)``: its CLI takes ``other`` plus one option per field."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        own_hints = typing.get_type_hints(command)
        own = [
            p.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=own_hints.get(p.name, p.annotation))
            for p in inspect.signature(command).parameters.values() if p.name != parameter
        ]
        fields = _option_parameters(cls, flags, skip)
        names = [p.name for p in fields]
        clash = set(names) & {p.name for p in own}
        if clash:
            raise TypeError(f"{command.__name__}: parameters {sorted(clash)} are also fields of {cls.__name__}")

        @functools.wraps(command)
        def wrapper(**kwargs: Any) -> Any:
            values = {}
            for name in names:
                value = kwargs.pop(name)
                parse = flags.get(name, Flag()).parse
                values[name] = parse(value) if parse is not None and value is not None else value
            try:
                options = cls(**values)
            except (ValueError, TypeError, OSError) as error:  # the dataclass's own checks
                fail(str(error), ExitCode.USAGE)
            return command(**{parameter: options}, **kwargs)

        del wrapper.__wrapped__  # typer must read the signature below, not the command's own
        wrapper.__signature__ = inspect.Signature(own + fields)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in own + fields}
        return wrapper

    return decorate


__all__ = ["Flag", "with_options"]
