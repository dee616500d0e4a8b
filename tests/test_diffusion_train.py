"""Diffusion training on a tiny config: caches, dataset, loss going down, checkpoints, resume, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from diffusion_helpers import HOP, MELS, UNITS, ddp_worker, tiny_config, tiny_vocoder_config, write_tiny_dataset
from typer.testing import CliRunner

from svc_train.cli.app import app
from svc_train.diffusion import trainer
from svc_train.diffusion.data import DiffusionDataError, DiffusionDataset, load_npy, prepare_mels
from svc_train.diffusion.trainer import load_diffusion, validation_loss
from svc_train.diffusion.unit2mel import Unit2Mel
from svc_train.diffusion.vocoder_mel import VocoderMel

torch.set_num_threads(1)


@pytest.fixture()
def dataset(tmp_path):
    config = tiny_config()
    train_list, val_list = write_tiny_dataset(tmp_path / "data", config)
    config.data.training_files, config.data.validation_files = str(train_list), str(val_list)
    config.env.expdir = str(tmp_path / "exp")
    prepare_mels(train_list, config, VocoderMel(tiny_vocoder_config().mel))
    return config


def test_cached_items_have_aligned_frames(dataset):
    items = DiffusionDataset(dataset.data.training_files, dataset)
    crop = int(dataset.data.duration * 16000 / HOP)
    assert sorted(item.spk_id for item in items.items) == [0, 0, 1, 1]  # both cache layouts (see helpers)
    for index in range(len(items)):
        item = items[index]
        assert item["mel"].shape == (crop, MELS)
        assert item["units"].shape == (crop, UNITS)
        assert item["f0"].shape == item["volume"].shape == (crop, 1)
        assert item["spk_id"].item() in (0, 1) and item["aug_shift"].shape == (1, 1)
    whole = DiffusionDataset(dataset.data.validation_files, dataset, whole=True, augment=False)[0]
    assert whole["mel"].shape == (16000 // HOP, MELS) and whole["aug_shift"].item() == 0.0


def test_training_lowers_the_loss_and_resumes(dataset):
    dataset.train.lr = 0.004
    dataset.train.interval_val = 75
    valid = DiffusionDataset(dataset.data.validation_files, dataset, whole=True, augment=False)
    loader = torch.utils.data.DataLoader(valid, batch_size=1)
    torch.manual_seed(dataset.train.seed)
    before = validation_loss(Unit2Mel.from_config(dataset, MELS), loader, torch.device("cpu"))
    report = trainer.train(dataset, MELS, max_steps=150)
    assert report.steps == 150 and report.checkpoint.name == "model_150.pt"
    (_, mid), (_, after) = report.validation
    assert after < mid < before and after < 0.9 * before, (before, mid, after)
    assert np.mean(report.losses[-20:]) < np.mean(report.losses[:20])
    saved = sorted(p.name for p in report.checkpoint.parent.glob("model_*.pt"))
    assert saved == ["model_150.pt"]  # model_75 replaced (75 is not a multiple of interval_force_save)
    assert yaml.safe_load((report.checkpoint.parent / "config.yaml").read_text())["model"]["n_chans"] == 16
    assert any(report.checkpoint.parent.glob("logs/events.out.tfevents.*"))

    resumed = trainer.train(dataset, MELS, max_steps=3)
    assert resumed.resumed_from.name == "model_150.pt" and resumed.checkpoint.name == "model_153.pt"
    model, _ = load_diffusion(resumed.checkpoint, dataset)
    state = torch.load(resumed.checkpoint, weights_only=True)
    assert state["global_step"] == 153 and set(state) == {"global_step", "model"}
    assert "decoder.alphas_cumprod" in state["model"] and not model.training


def test_so_vits_object_array_cache_reads_without_pickle_and_refuses_code(tmp_path):
    mel = np.random.default_rng(0).standard_normal((7, MELS)).astype(np.float32)
    np.save(tmp_path / "a.aug_mel.npy", np.asanyarray((mel, 2.5), dtype=object), allow_pickle=True)
    loaded, shift = load_npy(tmp_path / "a.aug_mel.npy")
    assert shift == 2.5 and np.array_equal(loaded, mel)

    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    evil = np.empty(1, dtype=object)
    evil[0] = Evil()
    np.save(tmp_path / "b.aug_mel.npy", evil, allow_pickle=True)
    with pytest.raises(DiffusionDataError, match="refusing to load builtins.print"):
        load_npy(tmp_path / "b.aug_mel.npy")
    with pytest.raises(DiffusionDataError, match="is missing"):
        load_npy(tmp_path / "c.mel.npy")


def test_cli_trains_and_reports_bad_input(dataset, tmp_path):
    vocoder_dir = tmp_path / "nsf_hifigan"
    vocoder_dir.mkdir()
    (vocoder_dir / "config.json").write_text(json.dumps(tiny_vocoder_config().to_dict()))
    dataset.vocoder.ckpt = str(vocoder_dir / "model")
    path = tmp_path / "diffusion.yaml"
    dataset.save(path)
    runner = CliRunner()
    result = runner.invoke(app, ["diffusion", "-c", str(path), "--max-steps", "2"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "exp" / "model_2.pt").is_file()
    (vocoder_dir / "config.json").unlink()
    result = runner.invoke(app, ["diffusion", "-c", str(path), "--max-steps", "1"])
    assert result.exit_code == 2 and "config.json not found" in result.output


@pytest.mark.slow
def test_torchrun_style_ddp_keeps_ranks_in_sync(dataset, tmp_path):
    """Two gloo processes (the environment torchrun sets): gradients are averaged, so both ranks end
    with identical weights, different from the start; only rank 0 writes the checkpoint."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    path = tmp_path / "diffusion.yaml"
    dataset.save(path)
    torch.multiprocessing.spawn(ddp_worker, args=(str(path), port, str(tmp_path)), nprocs=2, join=True)
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert rank0["steps"] == rank1["steps"] == 3
    assert torch.equal(rank0["params"], rank1["params"])
    torch.manual_seed(dataset.train.seed)
    initial = torch.cat([p.flatten() for p in Unit2Mel.from_config(dataset, MELS).parameters()])
    assert not torch.equal(initial, rank0["params"])
    assert sorted(p.name for p in (tmp_path / "exp").glob("model_*.pt")) == ["model_3.pt"]
