"""Smoke test of the end-to-end benchmark (benchmarks/e2e.py) on the micro fixture models.

The benchmarks themselves never run in the default test pass; this only proves that the
harness runs both pipelines on a short input and writes a well-formed report.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("parselmouth", reason="the micro models use the classic pm tracker (extra 'classic')")

from benchmarks import e2e


@pytest.fixture()
def micro_cache(fixtures_dir: Path, tmp_path: Path) -> Path:
    cache = tmp_path / "cache"
    shutil.copytree(fixtures_dir / "bench_micro", cache, ignore=shutil.ignore_patterns("README.md"))
    return cache


def test_e2e_quick_run_writes_rows_for_both_pipelines(micro_cache: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SVC_BENCH_CORPUS", str(tmp_path / "no-corpus"))  # synthetic input: no /work/shared needed
    out = tmp_path / "results"
    e2e.main(["--quick", "--sections", "throughput", "streaming", "--blocks", "250",
              "--cache", str(micro_cache), "--out", str(out), "--no-plot"])

    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    rows = {r["impl"]: r for r in results["throughput"]}
    assert set(rows) == {"ours", "torch"}
    for row in rows.values():
        assert row["size"] == "micro"
        assert row["input_seconds"] == pytest.approx(2.0, abs=1e-3)
        assert row["input"].startswith("synthetic")
        rtf = row["rtf"]["median"]
        assert math.isfinite(rtf) and rtf > 0
        stages = row["stages_median_s"]
        if row["impl"] == "ours":  # one conversion graph run per window: encoder and generator inside it
            assert stages["graph"] > 0 and stages["stitch"] >= 0
        else:
            assert stages["generator"] > 0 and stages["content"] > 0
        # the stages are parts of the whole: their sum cannot exceed the measured wall time
        assert sum(row["stages_median_s"].values()) <= row["reps"][0]["wall"] * 1.01
    ratio = rows["ours"]["ratio_torch_over_ours"]["median"]
    assert ratio == pytest.approx(rows["torch"]["reps"][0]["wall"] / rows["ours"]["reps"][0]["wall"])

    (stream,) = results["streaming"]
    assert stream["block_ms"] == pytest.approx(250.0, abs=0.1)
    assert stream["latency_ms"] >= stream["block_ms"]
    assert stream["compute_ms"]["median"] > 0

    table = (out / "results.md").read_text(encoding="utf-8")
    assert "| micro | 2 | 2.0 | ours |" in table and "| micro | 2 | 2.0 | torch |" in table
    assert results["machine"]["logical_cores"] >= 1


def test_cpu_speed_runs_eager_and_every_backend_on_the_same_feeds(micro_cache: Path, tmp_path: Path,
                                                                  monkeypatch) -> None:
    """benchmarks/cpu_speed.py on the micro model: eager and the graphs agree (the same model on the same
    feeds), every row carries its ratios, and every issue-16 target is listed."""
    from benchmarks import cpu_speed

    monkeypatch.setenv("SVC_BENCH_CORPUS", str(tmp_path / "no-corpus"))
    out = tmp_path / "cpu_speed.json"
    cpu_speed.main(["--size", "micro", "--cache", str(micro_cache), "--seconds", "0.5", "--reps", "1",
                    "--blocks-ms", "250", "--stream-seconds", "1.5", "--rounds", "1", "--json", str(out)])
    report = json.loads(out.read_text(encoding="utf-8"))
    (row,) = report["whole"]["lengths"]
    paths = row["backends"]
    assert {"ort-fp32", "torch-eager"} <= set(paths)
    assert paths["torch-eager"]["snr_db_vs_ort_fp32"] > 100.0  # eager runs the graph's model: float rounding only
    assert paths["torch-eager"]["speed_vs_eager"] == pytest.approx(1.0)
    for r in paths.values():
        assert math.isfinite(r["rtf"]) and r["rtf"] > 0 and r["speed_vs_eager"] > 0
    (stream,) = [r for r in report["streaming"]["rows"] if r["variant"] == "ort-fp32"]
    assert stream["block_ms"] == 250 and stream["compute_per_block"] > 0
    listed = [c["target"] for c in report["targets"]]
    assert any(t.startswith("ort-fp32 vs eager at 5 s") for t in listed)
    assert any(t.startswith("streaming 250 ms, fp32") for t in listed)
