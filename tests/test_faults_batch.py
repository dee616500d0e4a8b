"""Fault injection into `svc-run convert` (in process): an ONNX Runtime failure mid-batch, out of
memory with a retry that fits, a full disk, a bug in one file, outputs made with other settings.

Each test asserts that the other files are converted, the failed one is named with a one-line
reason, the exit code, that no temporary or partial file is left, and that inputs are untouched.
"""

from __future__ import annotations

import errno
import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state
from onnxruntime.capi.onnxruntime_inference_collection import InferenceSession
from typer.testing import CliRunner

from svc_runtime.cli import app
from svc_runtime.errors import DiskFullError, ModelRunError, OutOfMemoryError, translate_run_error
from tests.pipeline_fixture import SR, small_bundle_dir, vibrato_tone

runner = CliRunner()


def make_set(root: Path, seconds: dict[str, float]) -> dict[str, Path]:
    folder = root / "in"
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, length in seconds.items():
        audio, _ = vibrato_tone(length)
        files[name] = folder / f"{name}.wav"
        soundfile.write(files[name], audio, SR)
    return files


def digests(files: dict[str, Path]) -> dict[str, str]:
    return {k: hashlib.sha256(p.read_bytes()).hexdigest() for k, p in files.items()}


def convert(root: Path, *extra: str):
    args = ["convert", str(root / "in"), "-m", str(small_bundle_dir()), "-o", str(root / "out"),
            "--speaker", "alice", "--f0-method", "pm", *extra]
    return runner.invoke(app, args)


def leftovers(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if p.name.endswith((".part", ".claim"))]


def flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def fail_when(monkeypatch, predicate, make_error):
    """ONNX Runtime's own InferenceSession.run raises make_error() when predicate(feeds) holds."""
    original = InferenceSession.run

    def run(self, output_names, input_feed, run_options=None):
        if predicate(input_feed):
            raise make_error()
        return original(self, output_names, input_feed, run_options)

    monkeypatch.setattr(InferenceSession, "run", run)


def longest_2d(feeds) -> int:
    return max((v.shape[-1] for v in feeds.values() if getattr(v, "ndim", 0) == 2 and v.dtype == np.float32), default=0)


def test_translation_of_backend_errors():
    oom = translate_run_error("generator", ort_state.RuntimeException(
        "[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Non-zero status code returned while running Conv node. "
        "Name:'x' Status Message: std::bad_alloc"))
    assert isinstance(oom, OutOfMemoryError) and isinstance(oom, MemoryError)
    assert str(oom).startswith("out of memory in generator (std::bad_alloc)")
    failed = translate_run_error("speech_encoder", ort_state.Fail("[ONNXRuntimeError] : 1 : FAIL : broken node"))
    assert isinstance(failed, ModelRunError) and not isinstance(failed, MemoryError)
    assert "graph speech_encoder failed: FAIL : broken node" in str(failed)
    bug = KeyError("x")
    assert translate_run_error("g", bug) is bug  # not a backend failure: stays a bug


def test_ort_failure_mid_batch_fails_only_that_file(tmp_path: Path, monkeypatch):
    files = make_set(tmp_path, {"a": 0.8, "b_long": 2.5, "c": 0.8})
    before = digests(files)
    # wav input longer than 2.2 s at 16 kHz (only b_long's slice, 2.5 s + padding) fails inside ONNX Runtime
    fail_when(monkeypatch, lambda feeds: longest_2d(feeds) > 16000 * 2.2,
              lambda: ort_state.Fail("[ONNXRuntimeError] : 1 : FAIL : injected kernel failure"))
    result = convert(tmp_path)
    text = flat(result.output)
    assert result.exit_code == 1, result.output
    assert sorted(p.name for p in (tmp_path / "out").glob("*.wav")) == ["a.wav", "c.wav"]
    assert re.search(r"failed .*b_long\.wav: graph \w+ failed: FAIL : injected kernel failure", text), text
    assert "Traceback" not in result.output and "failed: b_long.wav (graph" in text  # the summary names it
    assert not leftovers(tmp_path / "out") and digests(files) == before


def test_out_of_memory_retries_with_a_smaller_window(tmp_path: Path, monkeypatch):
    files = make_set(tmp_path, {"a": 0.8, "long": 6.0})
    before = digests(files)
    # A 3-D input longer than 3.5 s of samples (the generator's sine noise) "does not fit": the default
    # 4.4 s window fails, the retry's 2.4 s windows (2 s + 2 x 0.2 s context) fit.
    fail_when(monkeypatch, lambda feeds: any(getattr(v, "ndim", 0) == 3 and v.shape[1] > 3.5 * SR
                                             for v in feeds.values()),
              lambda: ort_state.RuntimeException("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Status Message: "
                                                 "std::bad_alloc"))
    result = convert(tmp_path, "--max-window", "4", "--context-seconds", "0.2", "--crossfade-seconds", "0.05")
    assert result.exit_code == 0, result.output
    audio, sr = soundfile.read(tmp_path / "out" / "long.wav")
    assert sr == SR and len(audio) == 6 * SR and np.isfinite(audio).all() and np.abs(audio).max() > 1e-3
    assert "converted with a 2 s window and batch 1" in flat(result.output)
    assert not leftovers(tmp_path / "out") and digests(files) == before


def test_out_of_memory_twice_fails_that_file_only(tmp_path: Path, monkeypatch):
    files = make_set(tmp_path, {"a": 0.8, "long": 3.0, "z": 0.8})
    fail_when(monkeypatch, lambda feeds: longest_2d(feeds) > 16000 * 2.5,
              lambda: ort_state.RuntimeException("Status Message: Failed to allocate memory for requested buffer"))
    result = convert(tmp_path)
    text = flat(result.output)
    assert result.exit_code == 1
    assert sorted(p.name for p in (tmp_path / "out").glob("*.wav")) == ["a.wav", "z.wav"]
    assert re.search(r"long\.wav: out of memory in \w+ \(Failed to allocate memory.*also with a 15 s window and "
                     r"batch 1\); use a smaller --max-window", text), text
    assert not leftovers(tmp_path / "out") and digests(files) == digests(files)


def test_disk_full_stops_the_batch_cleanly(tmp_path: Path, monkeypatch):
    files = make_set(tmp_path, {"a": 0.8, "b": 0.8, "c": 0.8, "d": 0.8})
    before = digests(files)
    from svc_runtime.audio import write as write_module

    written = {"outputs": 0}
    original_init = write_module._GuardedFile.__init__

    def init(self, handle):  # the second output's file system is full
        original_init(self, FullDisk(handle) if written["outputs"] >= 1 else handle)

    original_atomic = write_module.write_audio_atomic

    def counting(*args, **kwargs):
        out = original_atomic(*args, **kwargs)
        written["outputs"] += 1
        return out

    monkeypatch.setattr(write_module._GuardedFile, "__init__", init)
    monkeypatch.setattr("svc_runtime.pipeline.batch.write_audio_atomic", counting)
    result = convert(tmp_path)
    text = flat(result.output)
    assert result.exit_code == 1, result.output
    out = tmp_path / "out"
    assert [p.name for p in out.glob("*.wav")] == ["a.wav"]
    assert re.search(r"b\.wav: cannot write \S+b\.wav: no space left on device; free space on that disk", text), text
    assert "stopped" in text and "2 file(s) not attempted" in text and "--skip-existing" in text
    assert "Exception ignored" not in result.output and "Traceback" not in result.output
    assert not leftovers(out) and not list(out.glob(".*settings.json"))[1:] and digests(files) == before


class FullDisk:
    """A file whose writes of more than a header's worth of bytes fail with ENOSPC, as on a full disk."""

    def __init__(self, handle) -> None:
        self._handle = handle

    def write(self, data):
        if len(data) > 100:
            raise OSError(errno.ENOSPC, "No space left on device")
        return self._handle.write(data)

    def __getattr__(self, name):
        return getattr(self._handle, name)


def test_write_error_is_one_error_with_no_temp_file(tmp_path: Path, monkeypatch, capfd):
    from svc_runtime.audio import write as write_module

    original_init = write_module._GuardedFile.__init__
    monkeypatch.setattr(write_module._GuardedFile, "__init__", lambda self, handle: original_init(self, FullDisk(handle)))
    for fmt in ("wav", "flac"):
        with pytest.raises(DiskFullError, match="no space left on device"):
            noise = np.random.default_rng(0).uniform(-0.5, 0.5, 50000).astype(np.float32)
            write_module.write_audio_atomic(tmp_path / f"x.{fmt}", noise, SR, fmt=fmt)
    assert list(tmp_path.iterdir()) == []
    assert "Exception ignored" not in capfd.readouterr().err


def test_a_bug_in_one_file_shows_its_traceback_and_the_rest_go_on(tmp_path: Path, monkeypatch):
    files = make_set(tmp_path, {"a": 0.8, "b_long": 2.5, "c": 0.8})
    fail_when(monkeypatch, lambda feeds: longest_2d(feeds) > 16000 * 2.2, lambda: KeyError("injected bug"))
    result = convert(tmp_path)
    assert result.exit_code == 1
    assert sorted(p.name for p in (tmp_path / "out").glob("*.wav")) == ["a.wav", "c.wav"]
    assert "Traceback" in result.output and "please report" in result.output
    assert not leftovers(tmp_path / "out") and files


def test_outputs_of_other_settings_are_not_overwritten(tmp_path: Path):
    make_set(tmp_path, {"a": 0.8, "b": 0.8})
    assert convert(tmp_path).exit_code == 0
    out = tmp_path / "out"
    first = (out / "a.wav").read_bytes()
    assert (out / ".a.wav.settings.json").is_file()
    same = convert(tmp_path)  # same settings: converting again is allowed (same bytes)
    assert same.exit_code == 0 and (out / "a.wav").read_bytes() == first
    other = convert(tmp_path, "--transpose", "3")
    assert other.exit_code == 1
    assert "converted with other settings (transpose); pass --overwrite" in flat(other.output)
    assert (out / "a.wav").read_bytes() == first
    kept = convert(tmp_path, "--transpose", "3", "--skip-existing")
    assert kept.exit_code == 0 and "other settings (transpose)" in flat(kept.output)
    assert (out / "a.wav").read_bytes() == first
    replaced = convert(tmp_path, "--transpose", "3", "--overwrite")
    assert replaced.exit_code == 0 and (out / "a.wav").read_bytes() != first
    assert not leftovers(out)
