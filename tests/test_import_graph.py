"""The lean-runtime rule, checked statically: no module of `svc_runtime` imports torch, librosa,
`svc_train` or `svc_export` anywhere, including imports inside functions (which an import-time
check cannot see) and `importlib.import_module("...")` / `__import__("...")` with a literal name."""

from __future__ import annotations

import ast
from pathlib import Path

import svc_runtime

FORBIDDEN = ("svc_train", "svc_export", "torch", "torchaudio", "librosa")
RUNTIME = Path(svc_runtime.__file__).parent


def forbidden_imports(source: str, filename: str) -> list[str]:
    """``"file:line name"`` for every import of a forbidden top-level package in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                names = [node.args[0].value]
        found += [f"{filename}:{node.lineno} {name}" for name in names if name.split(".")[0] in FORBIDDEN]
    return found


def test_the_checker_sees_every_kind_of_import():
    source = (
        "import numpy\nimport torch.nn as nn\nfrom svc_train.pitch import x\nfrom . import local\n"
        "def f():\n    from svc_export import graphs\n    import librosa\n"
        "    importlib.import_module('svc_train.pitch.extract')\n    __import__('torchaudio')\n"
    )
    assert [hit.split(" ")[1] for hit in forbidden_imports(source, "m.py")] == [
        "torch.nn", "svc_train.pitch", "svc_export", "librosa", "svc_train.pitch.extract", "torchaudio"]


def test_no_runtime_module_imports_torch_librosa_or_the_training_packages():
    files = sorted(RUNTIME.rglob("*.py"))
    assert len(files) > 30  # the whole package, not an empty glob
    hits = [hit for path in files for hit in forbidden_imports(path.read_text(encoding="utf-8"), str(path))]
    assert hits == []
