"""DDP through torchrun (gloo, CPU, 2 processes): two steps leave both ranks with identical weights,
and only rank 0 writes checkpoints and logs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from svc_train.data.config_builder import DatasetSplit, build_config, write_config, write_filelist
from svc_train.data.features import FeatureSettings, FileFeatures, save_features
from svc_train.mel import spectrogram_torch

SR, HOP, UNITS = 44100, 512, 16

WORKER = """
import sys, torch
from pathlib import Path
from svc_train.training import TrainOptions, Trainer
torch.set_num_threads(1)
config, model_dir, out = (Path(a) for a in sys.argv[1:4])
trainer = Trainer(TrainOptions(config, model_dir, max_steps=2, device="cpu", discriminator_scale=0.125,
                               tensorboard=False))
rank = trainer.ctx.rank
assert trainer.ctx.world_size == 2 and torch.distributed.get_backend() == "gloo"
steps_seen = len(trainer.train_loader)
trainer.run()
torch.save({"g": trainer.generator.state_dict(),
            "d": trainer.net_d.module.state_dict(),
            "batches_per_epoch": steps_seen}, out / f"rank{rank}.pt")
"""


def prepared_dataset(root: Path, speakers=("ann", "ben"), clips=4, frames=40) -> Path:
    """A dataset with feature caches made directly (tone audio, its real spectrogram, random units)."""
    rng = np.random.default_rng(0)
    settings = FeatureSettings(SR, HOP, 2048, 2048, "vec256l9", "/nonexistent/encoder.pt", "dio")
    files: dict[str, list[Path]] = {}
    for s, speaker in enumerate(speakers):
        (root / "data" / speaker).mkdir(parents=True)
        files[speaker] = []
        for k in range(clips):
            t = np.arange(frames * HOP) / SR
            f0 = 110.0 * (s + 1) * (1 + 0.1 * k)
            audio = (0.3 * np.sin(2 * np.pi * f0 * t) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
            wav = root / "data" / speaker / f"{k}.wav"
            soundfile.write(wav, audio, SR, subtype="FLOAT")
            spec = spectrogram_torch(torch.from_numpy(audio)[None], 2048, SR, HOP, 2048)[0].numpy()
            features = FileFeatures(
                units=rng.standard_normal((UNITS, frames // 2)).astype(np.float32),
                f0=np.full(frames, f0, np.float32), uv=np.ones(frames, np.float32),
                volume=np.full(frames, 0.2, np.float32), spec=spec,
            )
            save_features(wav, features, settings)
            files[speaker].append(wav.resolve())
    train = [w for ws in files.values() for w in ws[1:]]
    val = [ws[0] for ws in files.values()]
    split = DatasetSplit({s: i for i, s in enumerate(speakers)}, train, val)
    write_filelist(root / "lists" / "train.txt", train)
    write_filelist(root / "lists" / "val.txt", val)
    overrides = [
        "train.segment_size=2560", "train.batch_size=2", "train.eval_interval=100", "model.hidden_channels=16",
        "model.inter_channels=16", "model.filter_channels=32", "model.n_layers=1", "model.gin_channels=16",
        "model.upsample_initial_channel=32",
    ]
    config = root / "config.json"
    write_config(config, build_config(split, root / "lists" / "train.txt", root / "lists" / "val.txt", size="tiny",
                                      speech_encoder="vec256l9", units_dim=UNITS, overrides=overrides))
    return config


@pytest.mark.timeout(400)
def test_torchrun_two_ranks_gloo_identical_weights(tmp_path):
    config = prepared_dataset(tmp_path)
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    model_dir = tmp_path / "model"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=2",
           str(worker), str(config), str(model_dir), str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=380, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    # 6 training clips, batch 2, split over 2 ranks: each rank sees half an epoch's batches.
    assert rank0["batches_per_epoch"] == rank1["batches_per_epoch"] == 2
    for net in ("g", "d"):
        assert rank0[net].keys() == rank1[net].keys()
        for key in rank0[net]:
            torch.testing.assert_close(rank0[net][key], rank1[net][key], rtol=0, atol=0, msg=f"{net}.{key}")
    # Rank 0's checkpoint is the state both ranks hold.
    saved = torch.load(model_dir / "G_1.pth", weights_only=True)["model"]
    for key, value in saved.items():
        torch.testing.assert_close(value, rank0["g"][key], rtol=0, atol=0, msg=key)
    # Only rank 0 saved and logged: one checkpoint pair, one metrics line per step.
    assert sorted(p.name for p in model_dir.glob("*.pth")) == ["D_1.pth", "G_1.pth"]
    events = [json.loads(line) for line in (model_dir / "metrics.jsonl").read_text().splitlines()]
    train = [e for e in events if e["event"] == "train"]
    assert [e["step"] for e in train] == [0, 1]
    assert all(e["grad_norm_g"] > 0 and e["grad_norm_d"] > 0 for e in train)  # real updates happened
    start = next(e for e in events if e["event"] == "start")
    assert start["world_size"] == 2
