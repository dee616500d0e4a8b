"""Training-loop parts: learning-rate schedule, checkpoint bookkeeping, fine-tuning from G_0/D_0, mixed precision."""

import math

import pytest
import torch
from test_training_ddp import prepared_dataset

from svc_train.checkpoint import save_checkpoint
from svc_train.config import SvcConfig
from svc_train.models.discriminator import MultiPeriodDiscriminator
from svc_train.models.synthesizer import SynthesizerTrn
from svc_train.training import Trainer, TrainOptions, learning_rate_at
from svc_train.training.checkpoints import clean_checkpoints, latest_pair


@pytest.mark.parametrize("warmup", [0, 1, 3])
def test_learning_rate_matches_an_uninterrupted_so_vits_svc_run(warmup):
    base, decay = 2e-4, 0.9
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([param], base)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=decay, last_epoch=-1)
    for epoch in range(1, 9):  # so-vits-svc's train.py: warm-up overrides, then one decay step per epoch
        if epoch <= warmup:
            for group in optimizer.param_groups:
                group["lr"] = base / warmup * epoch
        assert learning_rate_at(epoch, base, decay, warmup) == pytest.approx(optimizer.param_groups[0]["lr"], rel=1e-12)
        optimizer.step()
        scheduler.step()


def test_checkpoint_bookkeeping(tmp_path):
    for name in ("G_0.pth", "D_0.pth", "G_5.pth", "D_5.pth", "G_10.pth", "D_10.pth", "G_20.pth", "D_15.pth", "x.pth"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in latest_pair(tmp_path)] == ["G_10.pth", "D_10.pth"]  # newest step present for both
    removed = clean_checkpoints(tmp_path, keep=2)
    assert sorted(p.name for p in removed) == ["D_5.pth", "G_5.pth"]
    assert sorted(p.name for p in tmp_path.glob("*.pth")) == [
        "D_0.pth", "D_10.pth", "D_15.pth", "G_0.pth", "G_10.pth", "G_20.pth", "x.pth"]


@pytest.fixture(scope="module")
def config_path(tmp_path_factory):
    return prepared_dataset(tmp_path_factory.mktemp("loop"), clips=3, frames=30)


def test_fine_tune_from_a_base_with_another_speaker_count(config_path, tmp_path):
    config = SvcConfig.load(config_path)
    base_config = SvcConfig.from_dict({**config.to_dict(), "model": {**config.to_dict()["model"], "n_speakers": 5}})
    torch.manual_seed(99)
    base_g = SynthesizerTrn.from_config(base_config)
    base_d = MultiPeriodDiscriminator(channel_scale=0.125)
    model_dir = tmp_path / "model"
    save_checkpoint(model_dir / "G_0.pth", base_g, 1234, 1e-4)
    save_checkpoint(model_dir / "D_0.pth", base_d, 1234, 1e-4)
    trainer = Trainer(TrainOptions(config_path, model_dir, max_steps=2, device="cpu", discriminator_scale=0.125,
                                   tensorboard=False))
    assert (trainer.epoch, trainer.step, trainer.resumed_from.name) == (1, 1, "G_0.pth")  # a new run, not epoch 1234
    ours, theirs = trainer.generator.state_dict(), base_g.state_dict()
    assert ours["emb_g.weight"].shape == (2, 16)  # our two speakers: kept as initialised
    for key in ours:
        if key != "emb_g.weight":
            torch.testing.assert_close(ours[key], theirs[key], rtol=0, atol=0, msg=key)
    for key, value in base_d.state_dict().items():
        torch.testing.assert_close(trainer.net_d.state_dict()[key], value, rtol=0, atol=0)
    assert trainer.run() == 1
    assert (model_dir / "G_1.pth").is_file() and (model_dir / "G_0.pth").is_file()


def _trainer_with(config_path, tmp_path, **train) -> Trainer:
    raw = SvcConfig.load(config_path).to_dict()
    raw["train"].update(train)
    path = tmp_path / "config.json"
    SvcConfig.from_dict(raw).save(path)
    return Trainer(TrainOptions(path, tmp_path / "model", max_steps=1, device="cpu", discriminator_scale=0.125,
                                tensorboard=False))


def test_bf16_uses_autocast_without_a_grad_scaler(config_path, tmp_path):
    trainer = _trainer_with(config_path, tmp_path, fp16_run=True, half_type="bf16")
    assert trainer.amp_enabled and trainer.amp_dtype == torch.bfloat16 and not trainer.scaler.is_enabled()


def test_fp16_step_with_grad_scaler_on_cpu(config_path, tmp_path):
    trainer = _trainer_with(config_path, tmp_path, fp16_run=True, half_type="fp16", batch_size=1, segment_size=1024)
    assert trainer.amp_enabled and trainer.amp_dtype == torch.float16 and trainer.scaler.is_enabled()
    losses = trainer.train_step(next(iter(trainer.train_loader)))
    assert all(math.isfinite(float(v)) for k, v in losses.items() if k.startswith("loss/"))
    assert all(p.dtype == torch.float32 for p in trainer.generator.parameters())  # master weights stay fp32
