"""Training data checks: `svc-train resample` refuses clips shorter than the minimum (warned, not
written); the feature extractor's units width is checked against the config's ssl_dim up front."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile
from typer.testing import CliRunner

from svc_runtime.errors import TrainingDataError
from svc_train.cli import app
from svc_train.config import SvcConfig
from svc_train.data.config_builder import MIN_CLIP_S
from svc_train.data.features import FeatureConfigError, FeatureExtractor, FeatureSettings
from svc_train.data.resample import ClipTooShortError, ResampleSettings, prepare_samples

FIXTURES = Path(__file__).parent / "fixtures"


def tone(sr: int, seconds: float, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * 200 * t) * (1 + 0.2 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


@pytest.mark.parametrize("seconds", [0.005, 0.1, 0.25])
def test_short_clip_is_refused(seconds):
    with pytest.raises(ClipTooShortError, match=rf"too short: {seconds * 1000:.0f} ms after trimming silence, "
                                                rf"the minimum is {MIN_CLIP_S * 1000:.0f} ms"):
        prepare_samples(tone(44100, seconds), 44100, ResampleSettings())
    out, _, _ = prepare_samples(tone(44100, 0.35), 44100, ResampleSettings())
    assert abs(out.shape[0] - 0.35 * 44100) < 0.05 * 44100


def test_resample_cli_warns_and_writes_only_long_enough_clips(tmp_path: Path):
    src = tmp_path / "raw"
    for speaker in ("alice", "bob"):
        (src / speaker).mkdir(parents=True)
    soundfile.write(src / "alice" / "long.wav", tone(48000, 1.0), 48000)
    soundfile.write(src / "alice" / "click.wav", tone(48000, 0.005), 48000)
    soundfile.write(src / "bob" / "short.flac", tone(22050, 0.2), 22050)
    soundfile.write(src / "bob" / "ok.wav", tone(22050, 0.5), 22050)
    before = {p: p.read_bytes() for p in src.rglob("*.*")}
    out = tmp_path / "dataset"
    result = CliRunner().invoke(app, ["resample", str(src), str(out), "-j", "0"])
    text = re.sub(r"\s+", " ", result.output)
    assert result.exit_code == 0, result.output
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.wav")) == ["alice/long.wav", "bob/ok.wav"]
    assert re.search(r"click\.wav: too short: 5 ms after trimming silence, the minimum is 300 ms", text), text
    assert re.search(r"short\.flac: too short: 200 ms", text), text
    assert "2 of 4 files" in text
    assert {p: p.read_bytes() for p in src.rglob("*.*")} == before
    assert not [p for p in out.rglob("*") if p.name.endswith(".part")]


def test_units_width_is_checked_against_ssl_dim(tmp_path: Path):
    config_path = tmp_path / "config.json"
    data = json.loads((FIXTURES / "sovits41_small" / "config.json").read_text())
    config_path.write_text(json.dumps(data))
    config = SvcConfig.load(config_path)
    assert config.model.ssl_dim == 768
    checkpoint = FIXTURES / "contentvec_small" / "fairseq_checkpoint.pt"
    extractor = FeatureExtractor(FeatureSettings.from_config(config, checkpoint, "pm"))
    assert extractor.units_dim == 64
    with pytest.raises(FeatureConfigError) as error:
        extractor.check_config(config, config_path)
    message = str(error.value)
    assert isinstance(error.value, TrainingDataError) and "\n" not in message
    assert f"{config_path}: model.ssl_dim is 768 but the vec768l12 checkpoint" in message
    assert "gives 64-wide units; use the encoder the config was made for" in message
    data["model"]["ssl_dim"] = 64
    config_path.write_text(json.dumps(data))
    extractor.check_config(SvcConfig.load(config_path), config_path)  # agrees: no error


def test_features_cli_refuses_a_width_mismatch_before_any_clip(tmp_path: Path):
    clip = tmp_path / "dataset" / "alice" / "a.wav"
    clip.parent.mkdir(parents=True)
    soundfile.write(clip, tone(44100, 1.0), 44100, subtype="PCM_16")
    lists = tmp_path / "filelists"
    lists.mkdir()
    for name in ("train.txt", "val.txt"):
        (lists / name).write_text(f"{clip}\n")
    data = json.loads((FIXTURES / "sovits41_small" / "config.json").read_text())
    data["data"]["training_files"] = str(lists / "train.txt")
    data["data"]["validation_files"] = str(lists / "val.txt")
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(data))
    checkpoint = FIXTURES / "contentvec_small" / "fairseq_checkpoint.pt"
    result = CliRunner().invoke(app, ["features", "-c", str(config_path), "-e", str(checkpoint), "--f0-method", "pm",
                                      "-j", "0"])
    text = re.sub(r"\s+", " ", result.output)
    assert result.exit_code == 2, result.output
    assert "model.ssl_dim is 768 but the vec768l12 checkpoint" in text and "gives 64-wide units" in text
    assert "Traceback" not in result.output and not list(clip.parent.glob("*.features.npz"))
