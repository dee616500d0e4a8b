"""End to end on audio synthesised here: resample -> config (tiny) -> features -> train on the CPU ->
the mel loss goes down -> stop and resume from the saved step -> the checkpoint loads with load_generator."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from typer.testing import CliRunner

from svc_train import load_generator
from svc_train.cli import app
from svc_train.training import learning_rate_at


def read_metrics(model_dir: Path) -> list[dict]:
    """The events of ``MODEL_DIR/metrics.jsonl`` the trainer writes (empty when there is none)."""
    path = model_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

ENCODER = Path(__file__).parent / "fixtures" / "contentvec_small" / "hf"  # tiny random ContentVec (64-d units)

# A model small enough for a few dozen CPU steps in seconds: so-vits-svc's tiny template, narrowed further.
TINY = [
    "train.segment_size=2560", "train.batch_size=3", "train.learning_rate=0.002", "train.eval_interval=12",
    "train.log_interval=6", "train.keep_ckpts=2", "model.hidden_channels=32", "model.inter_channels=32",
    "model.filter_channels=64", "model.n_layers=2", "model.upsample_initial_channel=32", "model.gin_channels=32",
]


def _synthesise_speakers(root: Path) -> None:
    """Three 'singers' (different pitch ranges and timbres), four short phrases each, mixed rates/formats."""
    rng = np.random.default_rng(7)
    for name, base, tilt in (("alto", 220.0, 1.0), ("bass", 110.0, 0.6), ("tenor", 160.0, 1.4)):
        (root / name).mkdir(parents=True)
        for k, (sr, ext) in enumerate(((44100, "wav"), (48000, "flac"), (22050, "wav"), (32000, "ogg"))):
            n = int(sr * rng.uniform(1.3, 1.7))
            t = np.arange(n) / sr
            f0 = base * 2 ** (0.25 * np.sin(2 * np.pi * rng.uniform(0.5, 1.5) * t))
            phase = 2 * np.pi * np.cumsum(f0) / sr
            x = sum(np.sin(h * phase) / h**tilt for h in range(1, 16))
            env = np.clip(np.minimum(t, t[-1] - t) * 6, 0, 1)
            x = 0.2 * x * env + 0.002 * rng.standard_normal(n)
            soundfile.write(root / name / f"{name}_{k}.{ext}", x.astype(np.float32), sr)


def _invoke(args: list[str]) -> str:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


@pytest.fixture
def one_thread():
    """The machine is shared: one intra-op thread is faster than two fighting for busy cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.timeout(300)
def test_prepare_train_resume_and_load(tmp_path, one_thread):
    _synthesise_speakers(tmp_path / "raw")
    dataset, config, model = tmp_path / "dataset", tmp_path / "configs" / "config.json", tmp_path / "model"
    _invoke(["resample", str(tmp_path / "raw"), str(dataset), "-j", "1"])
    args = ["config", str(dataset), "-o", str(config), "--filelists", str(tmp_path / "lists"), "--size", "tiny"]
    args += ["--encoder-checkpoint", str(ENCODER), "--val-per-speaker", "1"]
    for assignment in TINY:
        args += ["--set", assignment]
    _invoke(args)
    cfg = json.loads(config.read_text())
    assert cfg["model"]["ssl_dim"] == 64 and cfg["spk"] == {"alto": 0, "bass": 1, "tenor": 2}

    features = ["features", "-c", str(config), "-e", str(ENCODER), "--f0-method", "dio"]
    assert "12 computed" in _invoke(features).replace("\n", " ")
    assert "12 already cached" in _invoke(features).replace("\n", " ")  # resumable: nothing recomputed

    train = ["train", "-c", str(config), "-m", str(model), "-j", "0", "--d-channel-scale", "0.125", "--no-tensorboard"]
    _invoke(train + ["--max-steps", "24"])
    events = read_metrics(model)
    steps = [e for e in events if e["event"] == "train"]
    assert [e["step"] for e in steps] == list(range(24))
    mel = [e["loss/g/mel"] for e in steps]
    assert all(math.isfinite(v) for v in mel)
    first, last = np.mean(mel[:4]), np.mean(mel[-4:])
    assert last < 0.85 * first, f"mel loss did not go down: {mel}"
    # Checkpoints every eval_interval (12) plus the stopping point (23); keep_ckpts=2.
    assert sorted(p.name for p in model.glob("G_*.pth")) == ["G_12.pth", "G_23.pth"]
    assert [e["step"] for e in events if e["event"] == "eval"] == [12]
    saved = torch.load(model / "G_23.pth", map_location="cpu", weights_only=True)
    assert set(saved) == {"model", "iteration", "optimizer", "learning_rate"}

    # Resume: continues at step 24 with the epoch's learning rate and the saved weights.
    _invoke(train + ["--max-steps", "30"])
    events = read_metrics(model)
    start = [e for e in events if e["event"] == "start"][-1]
    assert start["resumed_from"] == "G_23.pth" and start["step"] == 24
    expected_lr = learning_rate_at(start["epoch"], 0.002, cfg["train"]["lr_decay"], 0)
    assert start["learning_rate"] == pytest.approx(expected_lr, rel=1e-12)
    resumed = [e["step"] for e in events if e["event"] == "train"][24:]
    assert resumed == list(range(24, 30))
    assert (model / "G_29.pth").is_file() and not (model / "G_12.pth").exists()  # keep_ckpts cleanup

    generator = load_generator(model / "G_29.pth", model / "config.json")
    c = torch.randn(1, 64, 20)
    f0 = torch.full((1, 20), 200.0)
    audio, _ = generator.infer(c, f0, torch.ones(1, 20), torch.tensor([1]), deterministic=True)
    assert audio.shape == (1, 1, 20 * 512) and torch.isfinite(audio).all()
