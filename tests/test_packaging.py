"""ONNX Runtime's flavour is a choice: `onnxruntime` (extra `cpu`) and `onnxruntime-gpu` (extra
`gpu`) are never installed together, whatever extras a user combines with `gpu`."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
EXTRAS: dict[str, list[str]] = PROJECT["optional-dependencies"]
CPU, GPU = "onnxruntime", "onnxruntime-gpu"
OFFLINE = re.compile(r"NewConnectionError|Temporary failure in name resolution|Network is unreachable|"
                     r"Max retries exceeded|No matching distribution found|Could not find a version", re.I)


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement.strip(), maxsplit=1)[0].lower()


def distributions(extras: tuple[str, ...]) -> set[str]:
    """Distribution names the base plus ``extras`` require directly (self-references expanded)."""
    names = {_name(r) for r in PROJECT["dependencies"]}
    todo, seen = list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for requirement in EXTRAS[extra]:
            if _name(requirement) == PROJECT["name"]:
                todo += re.search(r"\[(.*)\]", requirement).group(1).split(",")
            else:
                names.add(_name(requirement))
    return names


def test_the_base_has_no_onnx_runtime_and_only_cpu_and_dev_pull_the_cpu_one():
    assert not {CPU, GPU} & distributions(())
    assert {extra for extra in EXTRAS if CPU in distributions((extra,))} == {"cpu", "dev"}
    assert {extra for extra in EXTRAS if GPU in distributions((extra,))} == {"gpu"}


def test_no_combination_with_gpu_pulls_both_flavours():
    others = sorted(set(EXTRAS) - {"cpu", "gpu", "dev"})
    for n in range(len(others) + 1):
        for combo in itertools.combinations(others, n):
            names = distributions(("gpu", *combo))
            assert GPU in names and CPU not in names, combo
    assert CPU in distributions(("cpu", "export", "dev"))  # what .ci/run and the quickstart install


def _resolve(spec: str, tmp_path: Path) -> set[str]:
    """Distribution names pip would install for ``spec`` in an empty environment (a real resolution)."""
    report = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-build-isolation",
         "--quiet", "--report", str(report), spec],
        capture_output=True, text=True, timeout=900, cwd=ROOT,
    )
    if result.returncode != 0 and OFFLINE.search(result.stderr):
        pytest.skip(f"the package index is unreachable: {result.stderr.strip().splitlines()[-1]}")
    assert result.returncode == 0, result.stderr[-3000:]
    return {item["metadata"]["name"].lower() for item in json.loads(report.read_text())["install"]}


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_pip_resolves_a_gpu_install_without_the_cpu_runtime(tmp_path):
    """`pip install --dry-run --report` of the GPU user's whole set: onnxruntime-gpu, never onnxruntime."""
    names = _resolve(f"{ROOT}[gpu,export]", tmp_path)
    assert GPU in names and "torch" in names and "onnx" in names
    assert CPU not in names


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_pip_resolves_a_cpu_runtime_without_the_gpu_one(tmp_path):
    names = _resolve(f"{ROOT}[cpu]", tmp_path)
    assert CPU in names and GPU not in names and "torch" not in names
