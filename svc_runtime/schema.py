"""Typed dataclasses from JSON / YAML mappings: one reader for every config and schema section.

`read_dataclass(cls, raw, where, name)` checks each field of ``cls`` against its type hint
and raises one error naming the file (``where``) and the field path (``name.field``):

* ``bool``, ``int``, ``float``, ``str``: JSON scalars of that kind (true/false only for bool,
  an int is accepted for a float and kept as written);
* ``X | None``: null allowed; ``Literal["a", "b"]``: one of the listed values;
* ``tuple[X, ...]`` / ``tuple[X, Y]``: a list (length checked), returned as a tuple;
  ``list[X]``: a list; ``dict[str, X]`` / ``Mapping``: an object;
* ``X | Y`` of scalars: a value of either kind;
* ``Annotated[X, Rule(test, problem)]``: read as ``X``, then ``test(value)`` must hold, else
  the error says ``<path> <problem>, got <value>`` (``Rule`` values: `positive`, ...);
* a nested dataclass: read recursively.

A field missing from ``raw`` takes its default, or is an error when it has none. Unknown
keys go to a field named ``extras`` when ``cls`` has one (written back by `to_mapping`),
and are ignored otherwise. After its fields, a dataclass that defines ``schema_check(self)``
is checked as a whole (rules across fields); it raises `Invalid(field, problem)`, which
becomes the same one-line error with the field's path.

A `Dialect` words the errors and says whether null counts as missing; the default suits
the config files (``<file>: <path> must be ...``), a schema with its own wording (the
bundle manifest) subclasses it.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

EXTRAS = "extras"
"""Name of the optional field that keeps unknown keys."""


class SchemaError(ValueError):
    """A mapping does not fit its dataclass; the message names the file and the field."""


ErrorFactory = Callable[[str], Exception]


class Invalid(Exception):
    """Raised by a dataclass's ``schema_check``: ``field`` (a path below the dataclass, "" for
    the whole) breaks a rule; ``problem`` says how ("must be ...", "needs ...")."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}" if field else problem)
        self.field = field
        self.problem = problem


@dataclass(frozen=True)
class Rule:
    """A value check after the type check, as ``Annotated[int, Rule(lambda v: v > 0, "must be positive")]``."""

    test: Callable[[Any], bool]
    problem: str


positive = Rule(lambda v: v > 0, "must be a positive integer")
"""``Annotated[int, positive]``: an integer above zero."""


class Dialect:
    """How `read_dataclass` words its errors and reads null; this one is the config files'.

    ``where`` is the file (may be ""), ``path`` the field's path (``model.n_layers``).
    """

    null_is_missing = False
    """True: a null value counts as an absent key (takes the default, or is "missing")."""

    def not_mapping(self, where: str, path: str, value: Any) -> str:
        return f"{where}: {path or 'the top level'} must be a mapping, got {type(value).__name__}"

    def missing(self, where: str, path: str, hint: Any) -> str:
        return f"{where}: missing {path} (required; expected {type_name(hint)})"

    def wrong_type(self, where: str, path: str, hint: Any, value: Any) -> str:
        return f"{where}: {path} must be {type_name(hint)}, got {_shown(value)} ({type(value).__name__})"

    def not_one_of(self, where: str, path: str, choices: tuple, value: Any) -> str:
        return f"{where}: {path} must be one of {', '.join(map(str, choices))}, got {json.dumps(value)}"

    def wrong_length(self, where: str, path: str, expected: int, got: int) -> str:
        return f"{where}: {path} must have {expected} entries, got {got}"

    def invalid(self, where: str, path: str, problem: str) -> str:
        return f"{where}: {path} {problem}" if path else f"{where}: {problem}"


DEFAULT_DIALECT = Dialect()

_SCALARS: dict[type, tuple[type, ...]] = {bool: (bool,), int: (int,), float: (int, float), str: (str,)}
"""A scalar field's type -> the value types it accepts."""


def read_dataclass(
    cls: type[T], raw: Any, where: str, name: str = "", error: ErrorFactory = SchemaError,
    dialect: Dialect = DEFAULT_DIALECT,
) -> T:
    """An instance of dataclass ``cls`` from mapping ``raw``; ``error(message)`` is raised on bad input.

    ``where``: the file (or "<dict>") named first in every message; ``name``: the section's
    path, prefixed to field names (``"model"`` -> ``model.n_layers``); ``dialect``: the wording.
    """
    if not isinstance(raw, Mapping):
        raise error(dialect.not_mapping(where, name, raw))
    hints = typing.get_type_hints(cls, include_extras=True)
    values: dict[str, Any] = {}
    known = set()
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        known.add(f.name)
        if f.name == EXTRAS or not f.init:
            continue
        path = _join(name, f.name)
        if f.name not in raw or (dialect.null_is_missing and raw[f.name] is None):
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise error(dialect.missing(where, path, hints[f.name]))
            continue
        values[f.name] = coerce(raw[f.name], hints[f.name], path, where, error, dialect)
    if EXTRAS in known:
        values[EXTRAS] = {k: v for k, v in raw.items() if k not in known}
    instance = cls(**values)
    check = getattr(instance, "schema_check", None)
    if check is not None:
        try:
            check()
        except Invalid as problem:
            raise error(dialect.invalid(where, _join(name, problem.field), problem.problem)) from None
    return instance


def _join(name: str, field: str) -> str:
    if not field:
        return name
    if not name or field.startswith("["):
        return f"{name}{field}"
    return f"{name}.{field}"


def coerce(
    value: Any, hint: Any, path: str, where: str, error: ErrorFactory = SchemaError,
    dialect: Dialect = DEFAULT_DIALECT,
) -> Any:
    """Check ``value`` against type ``hint``; lists become tuples where the hint is a tuple."""
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        return _annotated(value, hint, path, where, error, dialect)
    if origin in (typing.Union, types.UnionType):
        return _union(value, hint, path, where, error, dialect)
    if origin is typing.Literal:
        choices = typing.get_args(hint)
        if value not in choices or isinstance(value, bool) != isinstance(choices[0], bool):
            raise error(dialect.not_one_of(where, path, choices, value))
        return value
    if origin is tuple:
        return _tuple(value, hint, path, where, error, dialect)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise error(dialect.wrong_type(where, path, hint, value))
        (item,) = typing.get_args(hint) or (Any,)
        return [coerce(v, item, f"{path}[{i}]", where, error, dialect) for i, v in enumerate(value)]
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise error(dialect.wrong_type(where, path, hint, value))
        args = typing.get_args(hint)
        item = args[1] if len(args) == 2 else Any
        return {k: coerce(v, item, f"{path}.{k}", where, error, dialect) for k, v in value.items()}
    if hint is Any:
        return value
    if dataclasses.is_dataclass(hint):
        return read_dataclass(hint, value, where, path, error, dialect)  # type: ignore[arg-type]
    if hint in _SCALARS:
        if not _is_scalar(value, hint):
            raise error(dialect.wrong_type(where, path, hint, value))
        return value
    raise TypeError(f"unsupported schema type {hint} for {path}")


def _is_scalar(value: Any, hint: type) -> bool:
    # bool is an int subclass: true/false counts only where the field is a bool
    return isinstance(value, _SCALARS[hint]) and (hint is bool or not isinstance(value, bool))


def _annotated(value: Any, hint: Any, path: str, where: str, error: ErrorFactory, dialect: Dialect) -> Any:
    base, *metadata = typing.get_args(hint)
    value = coerce(value, base, path, where, error, dialect)
    for rule in metadata:
        if isinstance(rule, Rule) and not rule.test(value):
            raise error(dialect.invalid(where, path, f"{rule.problem}, got {value!r}"))
    return value


def _union(value: Any, hint: Any, path: str, where: str, error: ErrorFactory, dialect: Dialect) -> Any:
    args = typing.get_args(hint)
    if value is None and type(None) in args:
        return None
    inner = [a for a in args if a is not type(None)]
    if len(inner) == 1:
        return coerce(value, inner[0], path, where, error, dialect)
    if not all(a in _SCALARS for a in inner):
        raise TypeError(f"unsupported schema type {hint} for {path}")
    if not any(_is_scalar(value, a) for a in inner):
        raise error(dialect.wrong_type(where, path, hint, value))
    return value


def _tuple(value: Any, hint: Any, path: str, where: str, error: ErrorFactory, dialect: Dialect) -> tuple:
    if not isinstance(value, (list, tuple)):
        raise error(dialect.wrong_type(where, path, hint, value))
    args = typing.get_args(hint)
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(coerce(v, args[0], f"{path}[{i}]", where, error, dialect) for i, v in enumerate(value))
    if len(value) != len(args):
        raise error(dialect.wrong_length(where, path, len(args), len(value)))
    return tuple(coerce(v, a, f"{path}[{i}]", where, error, dialect) for i, (v, a) in enumerate(zip(value, args)))


def _shown(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (str, int, float, bool, list, dict, type(None))) else repr(value)


def type_name(hint: Any) -> str:
    """How a type reads in an error message: ``int`` -> "an integer", ``tuple[int, ...]`` -> "a list of an integer"."""
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        return type_name(typing.get_args(hint)[0])
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        inner = " or ".join(type_name(a) for a in args if a is not type(None))
        return f"{inner} or null" if type(None) in args else inner
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


__all__ = [
    "DEFAULT_DIALECT",
    "EXTRAS",
    "Dialect",
    "ErrorFactory",
    "Invalid",
    "Rule",
    "SchemaError",
    "coerce",
    "positive",
    "read_dataclass",
    "to_mapping",
    "type_name",
]
