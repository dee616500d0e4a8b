"""One round trip per speech encoder, as a user runs it: config -> features -> train a few steps ->
svc-export -> convert, on a tiny random model and three short synthetic clips of one singer.

Used by the encoder test modules (whisper-ppg, dphubert, the -onnx files); each passes its own
small random encoder checkpoint.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
from typer.testing import CliRunner

SR = 44100
HOP = 512
TINY = [
    "train.segment_size=2560", "train.batch_size=2", "train.learning_rate=0.002", "train.eval_interval=100",
    "train.log_interval=1", "train.keep_ckpts=1", "model.hidden_channels=16", "model.inter_channels=16",
    "model.filter_channels=32", "model.n_layers=1", "model.upsample_initial_channel=32", "model.gin_channels=16",
]


@dataclass
class RoundTrip:
    """What a round trip produced: the config written, the bundle, a clip and its conversion."""

    config: dict
    bundle: Path
    clip: np.ndarray
    converted: np.ndarray
    features_units: np.ndarray


def sung_phrase(seconds: float, base_hz: float, seed: int) -> np.ndarray:
    """A harmonic tone with vibrato and an envelope, peak about 0.3, at 44.1 kHz."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(SR * seconds)) / SR
    f0 = base_hz * 2 ** (0.2 * np.sin(2 * np.pi * rng.uniform(0.8, 1.6) * t))
    phase = 2 * np.pi * np.cumsum(f0) / SR
    x = sum(np.sin(h * phase) / h for h in range(1, 12))
    env = np.clip(np.minimum(t, t[-1] - t) * 8, 0, 1)
    return (0.15 * x * env + 0.002 * rng.standard_normal(t.size)).astype(np.float32)


def _invoke(app, args: list[str]) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def round_trip(tmp_path: Path, speech_encoder: str, checkpoint: Path, units_dim: int) -> RoundTrip:
    """Run the whole chain with ``speech_encoder`` loaded from ``checkpoint``; see the module docstring."""
    from svc_export.exporter import ExportRequest, export_bundle
    from svc_runtime import Bundle
    from svc_runtime.pipeline.convert import Converter
    from svc_runtime.pipeline.options import ConvertOptions
    from svc_train.cli import app

    dataset = tmp_path / "dataset" / "alto"
    dataset.mkdir(parents=True)
    for k in range(3):
        soundfile.write(dataset / f"alto_{k}.wav", sung_phrase(1.2, 200.0 + 20 * k, k), SR)
    config_path, model = tmp_path / "config.json", tmp_path / "model"
    args = ["config", dataset.parent, "-o", config_path, "--filelists", tmp_path / "lists", "--size", "tiny",
            "--speech-encoder", speech_encoder, "--encoder-checkpoint", checkpoint, "--val-per-speaker", "1"]
    for assignment in TINY:
        args += ["--set", assignment]
    _invoke(app, args)
    config = json.loads(config_path.read_text())
    assert "3 computed" in " ".join(
        _invoke(app, ["features", "-c", config_path, "-e", checkpoint, "--f0-method", "dio"]).split())
    _invoke(app, ["train", "-c", config_path, "-m", model, "-j", "0", "--d-channel-scale", "0.125",
                  "--no-tensorboard", "--max-steps", "2"])
    checkpoints = sorted(model.glob("G_*.pth"))
    assert checkpoints, "training wrote no generator checkpoint"
    bundle_dir = tmp_path / "bundle"
    export_bundle(ExportRequest(checkpoint=checkpoints[-1], config=model / "config.json", output=bundle_dir,
                                encoder_checkpoint=checkpoint, simplify=False))
    clip, _ = soundfile.read(dataset / "alto_0.wav", dtype="float32")
    with np.load(f"{dataset / 'alto_0.wav'}.features.npz", allow_pickle=False) as cached:
        features_units = cached["units"]
    bundle = Bundle.load(bundle_dir)
    converted = Converter(bundle, ConvertOptions(speaker="alto", f0_method="pm")).convert(clip, SR)
    return RoundTrip(config, bundle_dir, clip, np.asarray(converted), features_units)


def check_round_trip(result: RoundTrip, speech_encoder: str, units_dim: int) -> None:
    """The config names the encoder and its unit size, the bundle's encoder gives the units training
    used (within the ONNX tolerance), and the conversion is finite audio of the input's length."""
    from svc_runtime import Bundle
    from svc_runtime.audio import resample

    model = result.config["model"]
    assert (model["speech_encoder"], model["ssl_dim"]) == (speech_encoder, units_dim)
    bundle = Bundle.load(result.bundle)
    assert bundle.manifest.speech_encoder.dim == units_dim and bundle.manifest.speech_encoder.graph
    units = bundle.encode_units(resample(result.clip, SR, 16000))[0]
    assert units.shape == result.features_units.shape
    assert np.abs(units - result.features_units).max() < 1e-3
    assert result.converted.shape[-1] == result.clip.shape[0]
    assert np.isfinite(result.converted).all() and np.abs(result.converted).max() > 0
