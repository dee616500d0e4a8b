"""Typed dataclasses from JSON / YAML mappings: one reader for every config and schema section.

`read_dataclass(cls, raw, where, name)` checks each field of ``cls`` against its type hint
and raises one error naming the file (``where``) and the field path (``name.field``):

* ``bool``, ``int``, ``float``, ``str``: JSON scalars of that kind (true/false only for bool,
  an int is accepted for a float and kept as written);
* ``X | None``: null allowed; ``Literal["a", "b"]``: one of the listed values;
* ``tuple[X, ...]`` / ``tuple[X, Y]``: a list (length checked), returned as a tuple;
  ``list[X]``: a list; ``dict[str, X]`` / ``Mapping``: an object;
* a nested dataclass: read recursively.

A field missing from ``raw`` takes its default, or is an error when it has none. Unknown
keys go to a field named ``extras`` when ``cls`` has one (written back by `to_mapping`),
and are ignored otherwise.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")

EXTRAS = "extras"
"""Name of the optional field that keeps unknown keys."""


class SchemaError(ValueError):
    """A mapping does not fit its dataclass; the message names the file and the field."""


ErrorFactory = Callable[[str], Exception]

_SCALARS: dict[type, tuple[type, ...]] = {bool: (bool,), int: (int,), float: (int, float), str: (str,)}
"""A scalar field's type -> the value types it accepts."""


def read_dataclass(
    cls: type[T], raw: Any, where: str, name: str = "", error: ErrorFactory = SchemaError
) -> T:
    """An instance of dataclass ``cls`` from mapping ``raw``; ``error(message)`` is raised on bad input.

    ``where``: the file (or "<dict>") named first in every message; ``name``: the section's
    path, prefixed to field names (``"model"`` -> ``model.n_layers``).
    """
    if not isinstance(raw, Mapping):
        raise error(f"{where}: {name or 'the top level'} must be a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    known = set()
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        known.add(f.name)
        if f.name == EXTRAS or not f.init:
            continue
        path = f"{name}.{f.name}" if name else f.name
        if f.name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise error(f"{where}: missing {path} (required; expected {type_name(hints[f.name])})")
            continue
        values[f.name] = coerce(raw[f.name], hints[f.name], path, where, error)
    if EXTRAS in known:
        values[EXTRAS] = {k: v for k, v in raw.items() if k not in known}
    return cls(**values)


def coerce(value: Any, hint: Any, path: str, where: str, error: ErrorFactory = SchemaError) -> Any:
    """Check ``value`` against type ``hint``; lists become tuples where the hint is a tuple."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) != 1:
            raise TypeError(f"unsupported schema type {hint} for {path}")
        return coerce(value, inner[0], path, where, error)
    if origin is typing.Literal:
        choices = typing.get_args(hint)
        if value not in choices or isinstance(value, bool) != isinstance(choices[0], bool):
            raise error(f"{where}: {path} must be one of {', '.join(map(str, choices))}, got {json.dumps(value)}")
        return value
    if origin is tuple:
        return _tuple(value, hint, path, where, error)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise _type_error(value, hint, path, where, error)
        (item,) = typing.get_args(hint) or (Any,)
        return [coerce(v, item, f"{path}[{i}]", where, error) for i, v in enumerate(value)]
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise _type_error(value, hint, path, where, error)
        args = typing.get_args(hint)
        item = args[1] if len(args) == 2 else Any
        return {k: coerce(v, item, f"{path}.{k}", where, error) for k, v in value.items()}
    if hint is Any:
        return value
    if dataclasses.is_dataclass(hint):
        return read_dataclass(hint, value, where, path, error)  # type: ignore[arg-type]
    if hint in _SCALARS:
        # bool is an int subclass: true/false counts only where the field is a bool
        if not isinstance(value, _SCALARS[hint]) or (hint is not bool and isinstance(value, bool)):
            raise _type_error(value, hint, path, where, error)
        return value
    raise TypeError(f"unsupported schema type {hint} for {path}")


def _tuple(value: Any, hint: Any, path: str, where: str, error: ErrorFactory) -> tuple:
    if not isinstance(value, (list, tuple)):
        raise _type_error(value, hint, path, where, error)
    args = typing.get_args(hint)
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(coerce(v, args[0], f"{path}[{i}]", where, error) for i, v in enumerate(value))
    if len(value) != len(args):
        raise error(f"{where}: {path} must have {len(args)} entries, got {len(value)}")
    return tuple(coerce(v, a, f"{path}[{i}]", where, error) for i, (v, a) in enumerate(zip(value, args)))


def _type_error(value: Any, hint: Any, path: str, where: str, error: ErrorFactory) -> Exception:
    shown = json.dumps(value) if isinstance(value, (str, int, float, bool, list, dict, type(None))) else repr(value)
    return error(f"{where}: {path} must be {type_name(hint)}, got {shown} ({type(value).__name__})")


def type_name(hint: Any) -> str:
    """How a type reads in an error message: ``int`` -> "an integer", ``tuple[int, ...]`` -> "a list of an integer"."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return f"{type_name(inner[0])} or null"
    if origin is typing.Literal:
        return "one of " + ", ".join(map(str, typing.get_args(hint)))
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {type_name(args[0])}"
        return f"a list of {len(args)} entries"
    if origin is list:
        return "a list"
    if origin in (dict, Mapping) or hint in (dict, Mapping) or dataclasses.is_dataclass(hint):
        return "a mapping"
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(hint, str(hint))


def to_mapping(instance: Any) -> dict[str, Any]:
    """The mapping `read_dataclass` reads back: tuples as lists, nested dataclasses as mappings, extras merged."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(instance):
        if f.name == EXTRAS or not f.init:
            continue
        out[f.name] = _plain(getattr(instance, f.name))
    out.update(getattr(instance, EXTRAS, None) or {})
    return out


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_mapping(value)
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


__all__ = ["EXTRAS", "SchemaError", "coerce", "read_dataclass", "to_mapping", "type_name"]
