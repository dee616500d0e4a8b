"""Checkpoint tools: both weight-norm key styles, named mismatches, so-vits-svc layout, compress, safety."""

from __future__ import annotations

import json
import pickle
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from svc_train import load_generator
from svc_train.checkpoint import (
    CheckpointError,
    compress,
    load_checkpoint,
    read_checkpoint,
    remove_weight_norm,
    save_checkpoint,
    to_parametrized_weight_norm_keys,
)
from svc_train.config import SvcConfig
from svc_train.models import SynthesizerTrn
from svc_train.models.modules import apply_weight_norm

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def small(fixtures_dir):
    return fixtures_dir / "sovits41_small"


@pytest.fixture(scope="module")
def inputs(small):
    io = np.load(small / "io.npz")
    frames = 24
    return (torch.from_numpy(io["c"][..., :frames]), torch.from_numpy(io["f0"][:, :frames]),
            torch.from_numpy(io["uv"][:, :frames]), torch.from_numpy(io["sid"]))


@pytest.fixture(scope="module")
def reference_output(small, inputs):
    model = load_generator(small / "G_1.pth", small / "config.json")
    return model.infer(*inputs, deterministic=True)[0]


def test_reference_checkpoint_layout_and_optimizer_order(small):
    data = read_checkpoint(small / "G_1.pth")
    assert set(data) == {"model", "iteration", "optimizer", "learning_rate"}
    model = SynthesizerTrn.from_config(SvcConfig.load(small / "config.json"))
    # Same keys in the same order, and the reference's AdamW state maps onto our parameter order.
    assert list(model.state_dict()) == list(data["model"])
    optimizer = torch.optim.AdamW(model.parameters(), 1e-4, betas=(0.8, 0.99), eps=1e-9)
    iteration, lr = load_checkpoint(small / "G_1.pth", model, optimizer)
    assert (iteration, lr) == (1, 1e-4)
    assert len(optimizer.param_groups[0]["params"]) == 615


def test_parametrizations_key_style_loads(small, inputs, reference_output, tmp_path):
    data = read_checkpoint(small / "G_1.pth")
    data["model"] = to_parametrized_weight_norm_keys(data["model"])
    assert any(k.endswith("parametrizations.weight.original0") for k in data["model"])
    torch.save(data, tmp_path / "G_param.pth")
    model = load_generator(tmp_path / "G_param.pth", small / "config.json")
    assert torch.equal(model.infer(*inputs, deterministic=True)[0], reference_output)


def test_generic_loader_fills_a_parametrized_module_from_classic_keys(tmp_path):
    classic = nn.Sequential(apply_weight_norm(nn.Conv1d(2, 3, 3)))
    save_checkpoint(tmp_path / "D_1.pth", classic, iteration=7, learning_rate=2e-4)
    modern = nn.Sequential(nn.utils.parametrizations.weight_norm(nn.Conv1d(2, 3, 3)))
    assert load_checkpoint(tmp_path / "D_1.pth", modern) == (7, 2e-4)
    x = torch.randn(1, 2, 10)
    assert torch.allclose(modern(x), classic(x), atol=1e-6)


def test_save_reload_keeps_keys_and_optimizer(small, tmp_path):
    model = load_generator(small / "G_1.pth", small / "config.json").train()
    optimizer = torch.optim.AdamW(model.parameters(), 1e-4, betas=(0.8, 0.99), eps=1e-9)
    model.emb_g.weight.sum().backward()
    optimizer.step()
    save_checkpoint(tmp_path / "G_5.pth", model, iteration=5, learning_rate=9e-5, optimizer=optimizer)
    stored = torch.load(tmp_path / "G_5.pth", weights_only=True)
    reference = torch.load(small / "G_1.pth", weights_only=True)
    assert list(stored) == ["model", "iteration", "optimizer", "learning_rate"]
    assert list(stored["model"]) == list(reference["model"])
    assert stored["iteration"] == 5 and stored["learning_rate"] == 9e-5
    fresh = SynthesizerTrn.from_config(SvcConfig.load(small / "config.json"))
    fresh_opt = torch.optim.AdamW(fresh.parameters(), 1e-4, betas=(0.8, 0.99), eps=1e-9)
    assert load_checkpoint(tmp_path / "G_5.pth", fresh, fresh_opt) == (5, 9e-5)
    assert torch.equal(fresh.emb_g.weight, model.emb_g.weight)
    assert len(fresh_opt.state) == len(optimizer.state) > 0


def test_missing_unexpected_and_mismatched_keys_are_named(small, tmp_path):
    data = read_checkpoint(small / "G_1.pth")
    state = OrderedDict(data["model"])
    del state["dec.conv_post.weight_g"]
    state["dec.extra.weight"] = torch.zeros(1)
    state["emb_g.weight"] = torch.zeros(3, 32)
    torch.save({**data, "model": state}, tmp_path / "G_bad.pth")
    with pytest.raises(CheckpointError) as info:
        load_generator(tmp_path / "G_bad.pth", small / "config.json")
    message = str(info.value)
    assert "G_bad.pth" in message
    assert "dec.conv_post.weight_g" in message and "dec.extra.weight" in message
    assert "emb_g.weight: file [3, 32] vs model [2, 32]" in message


def test_config_that_does_not_belong_to_the_checkpoint(small, tmp_path):
    config = SvcConfig.load(small / "config.json").replace_model(hidden_channels=16)
    config.save(tmp_path / "config.json")
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_generator(small / "G_1.pth", tmp_path / "config.json")


def test_missing_and_unsafe_files_are_refused(small, tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found: .*nope.pth"):
        load_generator(tmp_path / "nope.pth", small / "config.json")

    class Payload:
        def __reduce__(self):
            return (print, ("code ran",))

    with open(tmp_path / "evil.pth", "wb") as f:
        pickle.dump({"model": Payload()}, f, protocol=2)
    with pytest.raises(CheckpointError, match="weights-only"):
        read_checkpoint(tmp_path / "evil.pth")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="needs a 'model' state dict"):
        read_checkpoint(tmp_path / "other.pth")


def test_compress_strips_optimizer_and_posterior(small, inputs, reference_output, tmp_path):
    compress(small / "G_1.pth", tmp_path / "G_release.pth")
    stored = torch.load(tmp_path / "G_release.pth", weights_only=True)
    assert stored["optimizer"] is None and stored["iteration"] == 1
    assert not any(k.startswith("enc_q.") for k in stored["model"])
    model = load_generator(tmp_path / "G_release.pth", small / "config.json")
    assert torch.equal(model.infer(*inputs, deterministic=True)[0], reference_output)

    compress(small / "G_1.pth", tmp_path / "G_half.pth", half=True)
    half = torch.load(tmp_path / "G_half.pth", weights_only=True)
    assert all(v.dtype == torch.float16 for v in half["model"].values())
    assert (tmp_path / "G_half.pth").stat().st_size < (tmp_path / "G_release.pth").stat().st_size * 0.6
    model = load_generator(tmp_path / "G_half.pth", small / "config.json")
    assert float((model.infer(*inputs, deterministic=True)[0] - reference_output).abs().max()) < 0.05


def test_remove_weight_norm_keeps_output(small, inputs, reference_output):
    model = remove_weight_norm(load_generator(small / "G_1.pth", small / "config.json"))
    assert not any(k.endswith(("weight_g", "weight_v")) for k in model.state_dict())
    assert float((model.infer(*inputs, deterministic=True)[0] - reference_output).abs().max()) <= 1e-5


def test_init_command_writes_a_loadable_seeded_checkpoint(small, inputs, tmp_path):
    from typer.testing import CliRunner

    from svc_train.cli.app import app

    runner = CliRunner()
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        result = runner.invoke(app, ["init", "-c", str(small / "config.json"), "-o", str(tmp_path / name / "G_0.pth"),
                                     "--seed", str(seed)])
        assert result.exit_code == 0, result.output
    a, b, c = (torch.load(tmp_path / n / "G_0.pth", weights_only=True) for n in "abc")
    assert list(a) == ["model", "iteration", "optimizer", "learning_rate"]
    assert a["iteration"] == 0 and a["learning_rate"] == 1e-4
    assert tuple(a["optimizer"]["param_groups"][0]["betas"]) == (0.8, 0.99)
    assert list(a["model"]) == list(torch.load(small / "G_1.pth", weights_only=True)["model"])
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert not torch.equal(a["model"]["pre.weight"], c["model"]["pre.weight"])
    model = load_generator(tmp_path / "a" / "G_0.pth", small / "config.json")
    audio, _ = model.infer(*inputs, deterministic=True)
    assert torch.isfinite(audio).all() and float(audio.abs().max()) > 0

    bad = json.loads((small / "config.json").read_text())
    bad["model"]["n_heads"] = "two"
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    result = runner.invoke(app, ["init", "-c", str(tmp_path / "bad.json"), "-o", str(tmp_path / "G_bad.pth")])
    assert result.exit_code == 2 and "model.n_heads must be an integer" in result.output
    assert not (tmp_path / "G_bad.pth").exists()
