"""Package attributes that load their module on first use (PEP 562), so light imports stay light.

`svc-run --help` must not import ONNX Runtime, `svc-train --help` must not import torch: a package
lists its public names with the module each lives in, and `lazy_getattr` imports that module only
when the name is first read.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_getattr(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A module-level `__getattr__` for `package` serving `exports` (public name -> module that defines it)."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(exports[name]), name)

    return __getattr__
