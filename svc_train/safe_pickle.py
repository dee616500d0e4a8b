"""Allow-list unpickler for checkpoints that hold more than tensors.

Checkpoints are pickles downloaded from strangers, so loading one must never run
code from it. `torch.load(..., weights_only=True)` covers plain state dicts;
fairseq checkpoints also carry an omegaconf ``DictConfig`` (``cfg``), an argparse
``Namespace`` (``args``) and sometimes fairseq objects (task dictionaries, meters)
from a package we do not have. `load_checkpoint` reads those with `SafeUnpickler`:

- tensors, ``OrderedDict``/``defaultdict`` and builtin plain data load as usual;
- omegaconf ``DictConfig``/``ListConfig`` (and their value nodes) and
  ``argparse.Namespace`` load as inert stubs and come back as plain dicts/lists;
- classes from ``fairseq`` load as inert `PickledObject` records (name, call
  arguments, state): nothing is imported and nothing of theirs runs;
- every other global is refused with `UnsafePickleError` naming it.

No module named in the pickle is ever imported; the allow-list below maps names to
objects we already hold.
"""

from __future__ import annotations

import _compat_pickle
import builtins
import collections
import io
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from svc_runtime.errors import UsageError

__all__ = [
    "PickledObject",
    "SafeUnpickler",
    "Unpickler",
    "UnsafePickleError",
    "load",
    "load_checkpoint",
    "loads",
    "to_plain",
]

# Packages whose classes are recorded as inert data instead of refused: fairseq
# checkpoints pickle task dictionaries, meters and config enums from these.
STUBBED_PACKAGES = ("fairseq",)


class UnsafePickleError(UsageError, pickle.UnpicklingError):
    """The pickle names a global that is not on the allow-list."""


class PickledObject:
    """Inert record of an object of a class we do not import.

    Each global the pickle names gets its own subclass (``qualname`` =
    ``"module.Name"``). ``args`` holds the arguments the pickle called the class
    with (an Enum member is ``Choices("default")``); ``state`` holds what the
    pickle's BUILD step passed (usually the instance ``__dict__``). Creating one
    runs nothing of the original class.
    """

    qualname = "?"
    kind = "opaque"  # "dictconfig" | "listconfig" | "node" | "namespace" | "opaque"

    def __new__(cls, *args: Any) -> "PickledObject":
        record = object.__new__(cls)
        record.args = args
        record.state = None
        return record

    def __init__(self, *args: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"PickledObject({self.qualname}, args={self.args!r})"


def _record_class(module: str, name: str, kind: str) -> type[PickledObject]:
    return type(f"Pickled_{name}", (PickledObject,), {"qualname": f"{module}.{name}", "kind": kind})


class _TypingAny:
    """Stand-in for ``typing.Any`` (omegaconf metadata refers to it)."""

    def __repr__(self) -> str:
        return "typing.Any"


_TYPING_ANY = _TypingAny()

_OMEGACONF_KINDS = {
    ("omegaconf.dictconfig", "DictConfig"): "dictconfig",
    ("omegaconf.listconfig", "ListConfig"): "listconfig",
    ("omegaconf.base", "ContainerMetadata"): "opaque",
    ("omegaconf.base", "Metadata"): "opaque",
    ("omegaconf.base", "Node"): "node",
    ("omegaconf.nodes", "AnyNode"): "node",
    ("omegaconf.nodes", "ValueNode"): "node",
    ("omegaconf.nodes", "StringNode"): "node",
    ("omegaconf.nodes", "IntegerNode"): "node",
    ("omegaconf.nodes", "FloatNode"): "node",
    ("omegaconf.nodes", "BooleanNode"): "node",
    ("omegaconf.nodes", "EnumNode"): "node",
    ("omegaconf.nodes", "BytesNode"): "node",
    ("omegaconf.nodes", "PathNode"): "node",
    ("omegaconf.nodes", "InterpolationResultNode"): "node",
    ("argparse", "Namespace"): "namespace",
}

# Builtin types a pickle may name (as values or as pure constructors); no functions.
_BUILTINS = {
    name: getattr(builtins, name)
    for name in (
        "dict", "list", "tuple", "set", "frozenset", "int", "float", "complex",
        "bool", "str", "bytes", "bytearray", "slice", "range", "object",
    )
}


def _numpy_globals() -> dict[tuple[str, str], Any]:
    core = getattr(np, "_core", None) or np.core
    scalar = core.multiarray.scalar
    reconstruct = core.multiarray._reconstruct
    table: dict[tuple[str, str], Any] = {("numpy", "dtype"): np.dtype, ("numpy", "ndarray"): np.ndarray}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        table[(module, "scalar")] = scalar
        table[(module, "_reconstruct")] = reconstruct
    dtype_classes = getattr(np, "dtypes", None)  # numpy >= 1.25
    for dtype_class in ("Float64DType", "Float32DType", "Int64DType", "Int32DType", "BoolDType"):
        if hasattr(dtype_classes, dtype_class):
            table[("numpy.dtypes", dtype_class)] = getattr(dtype_classes, dtype_class)
    return table


def _allowed_globals() -> dict[tuple[str, str], Any]:
    table: dict[tuple[str, str], Any] = {
        ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
        ("torch", "Size"): torch.Size,
        ("torch", "device"): torch.device,
        ("torch", "Tensor"): torch.Tensor,
        ("torch.nn.parameter", "Parameter"): torch.nn.Parameter,
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("collections", "defaultdict"): collections.defaultdict,
        ("_codecs", "encode"): _latin1_encode,
        ("typing", "Any"): _TYPING_ANY,
    }
    table.update({("builtins", name): obj for name, obj in _BUILTINS.items()})
    # torch dtypes (torch.float32, ...); vars() so that no lazy torch submodule is imported
    table.update({("torch", name): obj for name, obj in vars(torch).items() if isinstance(obj, torch.dtype)})
    table.update(_numpy_globals())
    return table


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """Protocol-2 pickles store bytes as ``_codecs.encode(str, 'latin1')``."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError(f"_codecs.encode called with unexpected arguments ({type(text).__name__}, {encoding!r})")
    return text.encode("latin1")


_ALLOWED_GLOBALS = _allowed_globals()


class SafeUnpickler(pickle.Unpickler):
    """`pickle.Unpickler` whose globals come only from the allow-list (module doc)."""

    def __init__(self, file: BinaryIO, **kwargs: Any) -> None:
        super().__init__(file, **kwargs)
        self._stubs: dict[tuple[str, str], type[PickledObject]] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        found = _ALLOWED_GLOBALS.get((module, name))
        if found is not None:
            return found
        kind = _OMEGACONF_KINDS.get((module, name))
        if kind is None and module.split(".")[0] in STUBBED_PACKAGES:
            kind = "opaque"
        if kind is not None:
            if (module, name) not in self._stubs:
                self._stubs[(module, name)] = _record_class(module, name, kind)
            return self._stubs[(module, name)]
        raise UnsafePickleError(
            f"refusing to unpickle global '{module}.{name}': it is not on the allow-list "
            "(tensors, plain containers, omegaconf configs, argparse namespaces, fairseq data). "
            "Loading it could run code from the file."
        )


# torch.load(pickle_module=...) reads these two names.
Unpickler = SafeUnpickler


def load(file: BinaryIO, **kwargs: Any) -> Any:
    """`pickle.load` through `SafeUnpickler` (torch's legacy format calls this)."""
    return SafeUnpickler(file, **kwargs).load()


def to_plain(obj: Any) -> Any:
    """Turn the stubs that `SafeUnpickler` made into plain data.

    DictConfig -> dict, ListConfig -> list, value nodes -> their value,
    Namespace -> dict; dicts, lists and tuples are walked; tensors and other
    objects are returned as they are.
    """
    return _Plainer().convert(obj)


class _Plainer:
    def __init__(self) -> None:
        self._done: dict[int, Any] = {}

    def convert(self, obj: Any) -> Any:
        key = id(obj)
        if key in self._done:
            return self._done[key]
        result = self._convert(obj)
        self._done[key] = result
        return result

    def _convert(self, obj: Any) -> Any:
        if isinstance(obj, PickledObject):
            return self._record(obj)
        if isinstance(obj, (torch.Tensor, np.ndarray, str, bytes, int, float, bool, type(None))):
            return obj
        if isinstance(obj, collections.OrderedDict):
            return collections.OrderedDict((k, self.convert(v)) for k, v in obj.items())
        if isinstance(obj, dict):
            return {k: self.convert(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self.convert(v) for v in obj]
        if isinstance(obj, tuple):
            return tuple(self.convert(v) for v in obj)
        return obj

    def _record(self, record: PickledObject) -> Any:
        state = record.state if isinstance(record.state, dict) else {}
        if record.kind == "dictconfig":
            content = state.get("_content")
            if isinstance(content, dict):
                return {k: self.convert(v) for k, v in content.items()}
            return content  # None, "???" or an interpolation string
        if record.kind == "listconfig":
            content = state.get("_content")
            if isinstance(content, list):
                return [self.convert(v) for v in content]
            return content
        if record.kind == "node":
            return self._enum_value(self.convert(state.get("_val")))
        if record.kind == "namespace":
            return {k: self.convert(v) for k, v in state.items()}
        if record.kind == "opaque" and not record.state and len(record.args) == 1:
            return self._enum_value(record)
        return record

    @staticmethod
    def _enum_value(value: Any) -> Any:
        """A pickled Enum member is ``Class(value)``: keep the value."""
        if isinstance(value, PickledObject) and not value.state and len(value.args) == 1:
            inner = value.args[0]
            if isinstance(inner, (str, int, float, bool)):
                return inner
        return value


WEIGHTS_ONLY_ERRORS = (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError)
"""What ``torch.load(weights_only=True)`` raises for unsafe, truncated, foreign or missing files."""


def read_weights_only(
    path: str | os.PathLike, what: str, error: Callable[[str], Exception] = ValueError, hint: str = ""
) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)``: tensors and plain data, never code.

    The one checkpoint reader of the training side. A file torch cannot read that way raises
    ``error(message)`` naming the file, ``what`` it should be ("an RMVPE checkpoint"), torch's
    reason (first line) and ``hint`` (what to do).
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except WEIGHTS_ONLY_ERRORS as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        message = f"{path}: cannot read it as {what} of tensors and plain data (weights-only torch load: {reason})"
        raise error(f"{message}. {hint}" if hint else message) from exc


def load_checkpoint(path: str | os.PathLike) -> Any:
    """Read a torch checkpoint without running code from it.

    Tries ``torch.load(weights_only=True)`` first; when the file holds more than
    that allows (omegaconf, argparse, fairseq objects) it is read with
    `SafeUnpickler` and converted with `to_plain`. Tensors land on the CPU.

    Raises:
        FileNotFoundError: no file at ``path``.
        UnsafePickleError: the file names a class outside the allow-list.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        pass
    try:
        raw = torch.load(path, map_location="cpu", weights_only=False, pickle_module=_PICKLE_MODULE)
    except UnsafePickleError as error:
        raise UnsafePickleError(f"{path}: {error}") from None
    return to_plain(raw)


class _PickleModule:
    """What ``torch.load(pickle_module=...)`` needs: ``Unpickler`` and ``load``."""

    Unpickler = SafeUnpickler
    load = staticmethod(load)
    __name__ = "svc_train.safe_pickle"


_PICKLE_MODULE = _PickleModule()


def loads(data: bytes) -> Any:
    """Unpickle bytes with `SafeUnpickler` (no torch storages)."""
    return SafeUnpickler(io.BytesIO(data)).load()
