"""The device check (`benchmarks/device_check.py`) on the CPU: the report a GPU run will write, same shape.

On the CPU the provider's fp32 graph is the reference's, so parity is exact; the fp16 graph's SNR
(70.6 dB measured on the micro model) and the transfer counts are real checks of the binding path.
"""

from __future__ import annotations

import json
import math

import pytest

from benchmarks.device_check import REPORT, run_check


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("device_check")
    run_check("cpu", out, size="micro", work=tmp_path_factory.getbasetemp() / "device_check_micro",
              seconds=(1.0,), blocks_ms=(20.0, 50.0), blocks=3, repeats=1, parity_seconds=1.0)
    text = (out / REPORT).read_text()

    def no_constants(name):
        raise AssertionError(f"{REPORT} holds {name}: not strict JSON")

    return json.loads(text, parse_constant=no_constants)


def test_report_sections_ran_without_errors(report):
    for section in ("parity", "rtf", "streaming"):
        assert "error" not in report[section], report[section].get("error")
    assert report["provider"] == "cpu" and report["role"] == "converter"
    v = report["versions"]
    assert v["onnxruntime"] and v["torch"] and v["cpu"] and "CPUExecutionProvider" in v["onnxruntime_providers"]


def test_parity_fp32_exact_and_fp16_close(report):
    parity = report["parity"]
    assert parity["fp32"]["max_abs_error"] == 0.0 and parity["fp32"]["passes"]
    assert parity["fp32"]["phase_out_equal"]
    assert parity["fp16"]["snr_db"] > 50.0  # measured 70.6 dB
    assert parity["fp16"]["max_abs_error"] < 1e-2  # measured 1.4e-3


def test_rtf_and_streaming_rows(report):
    row = report["rtf"]["lengths"]["1s"]
    for key in ("generator_ort_fp32", "conversion_graph_fp32", "generator_torch_eager", "conversion_torch_eager"):
        assert 0.0 < row[key] < 100.0 and math.isfinite(row[key])
    assert row["speedup_conversion_vs_eager"] > 0
    for block in ("20ms", "50ms"):
        entry = report["streaming"][block]
        assert entry["window_frames"] > 0 and entry["latency_ms"] > float(block[:-2])
        for mode in ("host", "bound"):
            assert "error" not in entry[mode], entry[mode].get("error")
            assert 0.0 < entry[mode]["median_ms"] <= entry[mode]["max_ms"]
        assert "bound_cuda_graph" not in entry  # CUDA only
        transfers = entry["bound"]["transfers_per_chunk"]
        assert (transfers["host_to_device"], transfers["device_to_host"]) == (1, 1)
    assert report["transfers_per_chunk"]["host_to_device"] == 1


def _gpu_wheel():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "gpu_wheel.py"
    spec = importlib.util.spec_from_file_location("gpu_wheel", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_wheel_parts_join_back_and_a_damaged_part_is_refused(tmp_path):
    """scripts/gpu_wheel.py: split into parts <= the limit, join with sha256 checks (no download here)."""
    import os

    gpu_wheel = _gpu_wheel()
    files = []
    for name, size in (("a-1.0-py3-none-any.whl", 5000), ("b-2.0-cp312-cp312-linux_x86_64.whl", 123)):
        files.append(tmp_path / name)
        files[-1].write_bytes(os.urandom(size))
    stage = tmp_path / "stage"
    stage.mkdir()
    manifest = gpu_wheel.split(files, stage, 2048)
    assert len(manifest["parts"]) >= 3 and all(p["bytes"] <= 2048 for p in manifest["parts"])
    joined = gpu_wheel.join(stage)
    assert [p.name for p in joined] == [f.name for f in files]
    assert all(j.read_bytes() == f.read_bytes() for j, f in zip(joined, files))
    second = stage / manifest["parts"][1]["file"]
    second.write_bytes(b"x" + second.read_bytes()[1:])
    with pytest.raises(SystemExit, match="part02: sha256 differs"):
        gpu_wheel.join(stage)
    second.unlink()
    with pytest.raises(SystemExit, match="part02: part missing"):
        gpu_wheel.join(stage)
