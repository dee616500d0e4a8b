"""`svc_runtime.schema` beyond plain types: value rules, scalar unions, rules across fields, dialects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import pytest

from svc_runtime.schema import Dialect, Invalid, Rule, SchemaError, positive, read_dataclass, type_name

Even = Annotated[int, Rule(lambda v: v % 2 == 0, "must be even")]


@dataclass(frozen=True)
class _Window:
    size: Annotated[int, positive]
    hop: Even = 2
    axis: int | str = 0
    label: Annotated[str, Rule(str.isidentifier, "must be a name")] | None = None

    def schema_check(self) -> None:
        if self.hop > self.size:
            raise Invalid("hop", f"must not exceed size ({self.size}), got {self.hop}")
        if self.size == 7:
            raise Invalid("", "size 7 is reserved")


@dataclass(frozen=True)
class _Outer:
    window: _Window
    windows: tuple[_Window, ...] = ()


def test_rules_unions_and_checks_accept_good_values():
    value = read_dataclass(_Outer, {"window": {"size": 8, "hop": 4, "axis": "frames", "label": "a"},
                                    "windows": [{"size": 4, "axis": 1}]}, "w.json")
    assert value == _Outer(_Window(8, 4, "frames", "a"), (_Window(4, 2, 1),))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"window": {"size": 0}}, "w.json: window.size must be a positive integer, got 0"),
        ({"window": {"size": 8, "hop": 3}}, "w.json: window.hop must be even, got 3"),
        ({"window": {"size": 8, "label": "1a"}}, "w.json: window.label must be a name, got '1a'"),
        ({"window": {"size": "8"}}, r'w.json: window.size must be an integer, got "8" \(str\)'),
        ({"window": {"size": 8, "axis": 1.5}}, r"window.axis must be an integer or a string, got 1.5 \(float\)"),
        ({"window": {"size": 8, "axis": True}}, "window.axis must be an integer or a string, got true"),
        ({"window": {"size": 2, "hop": 4}}, r"w.json: window.hop must not exceed size \(2\), got 4"),
        ({"window": {"size": 7}}, "w.json: window size 7 is reserved"),
        ({"window": {"size": 8}, "windows": [{"size": 2, "hop": 4}]}, r"windows\[0\].hop must not exceed size"),
    ],
)
def test_rule_and_check_errors_name_the_field(raw, message):
    with pytest.raises(SchemaError, match=message):
        read_dataclass(_Outer, raw, "w.json")


def test_type_names_see_through_annotations_and_unions():
    assert type_name(Annotated[int, positive]) == "an integer"
    assert type_name(int | str) == "an integer or a string"
    assert type_name(Annotated[str, positive] | None) == "a string or null"


class _Terse(Dialect):
    null_is_missing = True

    def missing(self, where: str, path: str, hint: Any) -> str:
        return f"{path}: required"

    def invalid(self, where: str, path: str, problem: str) -> str:
        return f"{path}: {problem}"


class _Failure(Exception):
    pass


def test_a_dialect_words_the_errors_and_may_read_null_as_absent():
    terse = _Terse()
    assert read_dataclass(_Window, {"size": 8, "hop": None}, "", dialect=terse) == _Window(8)
    with pytest.raises(_Failure, match="^win.size: required$"):
        read_dataclass(_Window, {"size": None}, "", "win", _Failure, terse)
    with pytest.raises(_Failure, match="^win.hop: must be even, got 3$"):
        read_dataclass(_Window, {"size": 8, "hop": 3}, "", "win", _Failure, terse)
    with pytest.raises(_Failure, match="^win: size 7 is reserved$"):
        read_dataclass(_Window, {"size": 7}, "", "win", _Failure, terse)
    with pytest.raises(SchemaError, match=r"hop must be an integer, got null \(NoneType\)"):
        read_dataclass(_Window, {"size": 8, "hop": None}, "w.json")  # the default dialect: null is a value
