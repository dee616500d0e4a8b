"""`svc-run convert` end to end: folders, mirrored outputs, bad files reported, exit codes, resume, shards."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile
from typer.testing import CliRunner

from svc_runtime.cli import app
from svc_runtime.pipeline.batch import PlanError, parse_shard, plan_jobs
from tests.pipeline_fixture import SR, small_bundle_dir, vibrato_tone

runner = CliRunner()


def make_inputs(root: Path) -> dict[str, Path]:
    """Good and bad files: empty, truncated, not audio, NaN, silence, 8 kHz, stereo 96 kHz."""
    (root / "set" / "sub").mkdir(parents=True)
    good, _ = vibrato_tone(0.8)
    files = {
        "good": root / "set" / "good.wav",
        "sub_good": root / "set" / "sub" / "deep.flac",
        "empty": root / "set" / "empty.wav",
        "truncated": root / "set" / "truncated.wav",
        "text": root / "set" / "notes.wav",
        "nan": root / "set" / "nan.wav",
        "silence": root / "set" / "silence.wav",
        "8k": root / "set" / "tel_8k.wav",
        "stereo96k": root / "set" / "sub" / "stereo 96k été.wav",
    }
    soundfile.write(files["good"], good, SR)
    soundfile.write(files["sub_good"], good, SR, format="FLAC")
    files["empty"].write_bytes(b"")
    soundfile.write(files["truncated"], good, SR)
    files["truncated"].write_bytes(files["truncated"].read_bytes()[:30])
    files["text"].write_text("this is not audio\n")
    bad = good.copy()
    bad[1000] = np.nan
    soundfile.write(files["nan"], bad, SR, subtype="FLOAT")
    soundfile.write(files["silence"], np.zeros(SR, np.float32), SR)
    tel, _ = vibrato_tone(0.7, sr=8000)
    soundfile.write(files["8k"], tel, 8000)
    hi, _ = vibrato_tone(0.6, sr=96000)
    soundfile.write(files["stereo96k"], np.stack([hi, 0.6 * hi], axis=1), 96000)
    return files


def test_batch_converts_good_files_and_reports_each_bad_one(tmp_path: Path):
    files = make_inputs(tmp_path)
    out = tmp_path / "out"
    args = ["convert", str(tmp_path / "set"), "-m", str(small_bundle_dir()), "-o", str(out),
            "--speaker", "alice", "--f0-method", "pm"]
    result = runner.invoke(app, args)
    text = result.output
    assert result.exit_code == 1, text
    flat = re.sub(r"\s+", " ", text)
    for key, reason in (("empty", "file is empty (0 bytes)"), ("truncated", "not a readable audio file"),
                        ("text", "not a readable audio file"), ("nan", "non-finite samples")):
        assert f"{files[key].name}: {reason}" in flat or (files[key].name in flat and reason in flat), (key, text)
    expected = {
        "good.wav": 0.8, "sub/deep.wav": 0.8, "silence.wav": 1.0, "tel_8k.wav": 0.7, "sub/stereo 96k été.wav": 0.6,
    }
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*.wav"))
    assert written == sorted(expected)
    for rel, seconds in expected.items():
        audio, sr = soundfile.read(out / rel)
        assert sr == SR and audio.ndim == 1 and len(audio) == round(seconds * SR)
    assert not list(out.rglob("*.part"))
    assert "converted" in text and "RTF" in text
    # Resume: everything already written is skipped, bad files fail again.
    again = runner.invoke(app, args + ["--skip-existing"])
    assert again.exit_code == 1 and "skipped" in again.output


def test_shards_split_the_file_list(tmp_path: Path):
    files = make_inputs(tmp_path)
    all_jobs = plan_jobs([tmp_path / "set"], tmp_path / "out", "wav")
    shards = [plan_jobs([tmp_path / "set"], tmp_path / "out", "wav", (i, 3)) for i in range(3)]
    assert sorted(j.source for s in shards for j in s) == sorted(j.source for j in all_jobs)
    assert len(all_jobs) == len(files)
    with pytest.raises(PlanError, match="i/n"):
        parse_shard("2-3")
    with pytest.raises(PlanError, match="0 <= i < n"):
        parse_shard("3/3")


def test_outputs_never_overwrite_inputs(tmp_path: Path):
    x, _ = vibrato_tone(0.5)
    soundfile.write(tmp_path / "a.wav", x, SR)
    with pytest.raises(PlanError, match="would overwrite an input"):
        plan_jobs([tmp_path / "a.wav"], tmp_path, "wav")
    result = runner.invoke(app, ["convert", str(tmp_path / "a.wav"), "-m", str(small_bundle_dir()),
                                 "-o", str(tmp_path), "--speaker", "alice"])
    assert result.exit_code == 2 and "would overwrite an input" in result.output
    soundfile.write(tmp_path / "b.flac", x, SR, format="FLAC")
    (tmp_path / "d").mkdir()
    soundfile.write(tmp_path / "d" / "b.wav", x, SR)
    jobs = plan_jobs([tmp_path / "b.flac", tmp_path / "d" / "b.wav"], tmp_path / "out", "wav")
    assert sorted(j.target.name for j in jobs) == ["b.flac.wav", "b.wav.wav"]


def test_unknown_speaker_and_missing_bundle_are_usage_errors(tmp_path: Path):
    x, _ = vibrato_tone(0.5)
    soundfile.write(tmp_path / "a.wav", x, SR)
    bad = runner.invoke(app, ["convert", str(tmp_path / "a.wav"), "-m", str(small_bundle_dir()),
                              "-o", str(tmp_path / "o"), "--speaker", "carol"])
    assert bad.exit_code == 2 and "unknown speaker 'carol'" in bad.output
    missing = runner.invoke(app, ["convert", str(tmp_path / "a.wav"), "-m", str(tmp_path / "nope"),
                                  "-o", str(tmp_path / "o"), "--speaker", "alice"])
    assert missing.exit_code == 2 and "bundle folder not found" in missing.output


def test_an_unexpected_error_in_one_file_does_not_stop_the_batch(tmp_path: Path):
    from svc_runtime.bundle.bundle import Bundle
    from svc_runtime.pipeline.batch import BatchRunner, FileJob
    from svc_runtime.pipeline.convert import Converter
    from svc_runtime.pipeline.options import ConvertOptions

    class Flaky(Converter):
        def prepare(self, decoded):
            if decoded.samples.shape[0] == 4410 * 3:
                raise IndexError("boom")
            return super().prepare(decoded)

    conv = Flaky(Bundle.load(small_bundle_dir()), ConvertOptions(speaker="alice", f0_method="pm"))
    jobs = []
    for i, n in enumerate((4410 * 2, 4410 * 3, 4410 * 4)):
        x, _ = vibrato_tone(n / SR)
        soundfile.write(tmp_path / f"{i}.wav", x[:n], SR)
        jobs.append(FileJob(tmp_path / f"{i}.wav", tmp_path / "out" / f"{i}.wav"))
    results = list(BatchRunner(conv).run(jobs))
    assert [r.status for r in results] == ["converted", "failed", "converted"]
    assert "IndexError: boom" in results[1].reason
