"""Every SynthesizerTrn option at tiny sizes: training forward, backward, infer, checkpoint round trip."""

from __future__ import annotations

import json

import pytest
import torch

from svc_train import load_generator
from svc_train.checkpoint import save_checkpoint
from svc_train.config import SvcConfig
from svc_train.models import SynthesizerTrn

HOP = 8
FRAMES = 12


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    # Tiny tensors: thread start-up dominates, and the CI machine is shared.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def tiny_config(fixtures_dir, **model_changes) -> SvcConfig:
    raw = json.loads((fixtures_dir / "sovits41_small" / "config.json").read_text())
    raw["data"].update(filter_length=30, win_length=30, hop_length=HOP)
    raw["train"]["segment_size"] = 4 * HOP
    raw["model"].update(
        inter_channels=4, hidden_channels=8, filter_channels=16, n_heads=2, n_layers=1, ssl_dim=12,
        gin_channels=6, upsample_rates=[4, 2], upsample_kernel_sizes=[8, 4], upsample_initial_channel=8,
        resblock_kernel_sizes=[3, 5], resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5]], n_flow_layer=2,
        n_layers_trans_flow=2,
    )
    raw["model"].update(model_changes)
    if raw["model"]["n_speakers"] == 1:
        raw["spk"] = {"solo": 0}
    return SvcConfig.from_dict(raw, source="tiny")


OPTIONS = {
    "default": {},
    "transformer_flow": {"use_transformer_flow": True},
    "transformer_flow_shared": {"use_transformer_flow": True, "flow_share_parameter": True},
    "residual_flow_shared_depthwise": {"flow_share_parameter": True, "use_depthwise_conv": True},
    "depthwise_vol": {"use_depthwise_conv": True, "vol_embedding": True},
    "resblock2_no_f0_single_speaker": {"resblock": "2", "use_automatic_f0_prediction": False, "n_speakers": 1},
    "snake": {"vocoder_name": "nsf-snake-hifigan", "resblock": "2"},
    "snake_resblock1_transformer_vol": {"vocoder_name": "nsf-snake-hifigan", "use_transformer_flow": True,
                                        "vol_embedding": True},
}


def batch_inputs(config: SvcConfig, batch: int = 2):
    gen = torch.Generator().manual_seed(0)
    c = torch.randn(batch, config.model.ssl_dim, FRAMES, generator=gen)
    f0 = 100 + 300 * torch.rand(batch, FRAMES, generator=gen)
    f0[:, 3:5] = 0
    uv = (f0 > 0).float()
    vol = torch.rand(batch, FRAMES, generator=gen)
    spec = torch.rand(batch, config.spec_channels, FRAMES, generator=gen)
    sid = torch.arange(batch) % config.model.n_speakers
    return c, f0, uv, vol, spec, sid


@pytest.mark.parametrize("name", list(OPTIONS))
def test_option_combination(name, fixtures_dir, tmp_path):
    torch.manual_seed(0)
    config = tiny_config(fixtures_dir, **OPTIONS[name])
    model = SynthesizerTrn.from_config(config)
    with torch.no_grad():  # coupling outputs start at zero (identity flow); make them matter
        for layer in model.flow.flows[::2]:
            layer.post.weight.normal_(0, 0.3)
    c, f0, uv, vol, spec, sid = batch_inputs(config)

    # Training forward (so-vits-svc's return layout) and a backward pass through everything.
    lengths = torch.tensor([FRAMES, FRAMES - 3])
    out = model(c, f0, uv, spec, g=sid[:, None], c_lengths=lengths, spec_lengths=lengths, vol=vol)
    o, ids_slice, spec_mask, (z, z_p, m_p, logs_p, m_q, logs_q), pred_lf0, norm_lf0, lf0 = out
    assert o.shape == (2, 1, config.segment_frames * HOP)
    assert ids_slice.shape == (2,) and bool((ids_slice <= lengths - config.segment_frames).all())
    assert spec_mask.shape == (2, 1, FRAMES) and float(spec_mask[1, 0, -3:].sum()) == 0
    for t in (z, z_p, m_p, logs_p, m_q, logs_q):
        assert t.shape == (2, config.model.inter_channels, FRAMES)
    if config.model.use_automatic_f0_prediction:
        assert pred_lf0.shape == norm_lf0.shape == lf0.shape == (2, 1, FRAMES)
    else:
        assert pred_lf0 == norm_lf0 == lf0 == 0
    loss = o.square().mean() + z_p.square().mean() + logs_q.mean() + (m_p + logs_p).mean()
    if config.model.use_automatic_f0_prediction:
        loss = loss + (pred_lf0 - norm_lf0).square().mean()
    loss.backward()
    assert model.enc_q.pre.weight.grad is not None and model.dec.conv_pre.weight_v.grad is not None
    if config.model.vol_embedding:
        assert model.emb_vol.weight.grad is not None

    # Inference: deterministic runs repeat exactly; vol changes the output only with vol_embedding.
    model.eval()
    with torch.no_grad():  # the flow is invertible: reverse(forward(z)) == z
        g = model.embed_speaker(sid)
        mask = torch.ones(2, 1, FRAMES)
        z = torch.randn(2, config.model.inter_channels, FRAMES)
        assert not torch.allclose(model.flow(z, mask, g=g), z, atol=1e-3)
        assert torch.allclose(model.flow(model.flow(z, mask, g=g), mask, g=g, reverse=True), z, atol=1e-5)
    audio, f0_out = model.infer(c, f0, uv, sid, vol=vol, deterministic=True)
    assert audio.shape == (2, 1, FRAMES * HOP) and torch.equal(f0_out, f0)
    again, _ = model.infer(c, f0, uv, sid, vol=vol, deterministic=True)
    assert torch.equal(audio, again)
    no_vol, _ = model.infer(c, f0, uv, sid, vol=None, deterministic=True)
    assert torch.equal(no_vol, audio) != config.model.vol_embedding
    if config.model.use_automatic_f0_prediction:
        _, f0_pred = model.infer(c, f0, uv, sid, predict_f0=True, deterministic=True)
        assert f0_pred.shape == f0.shape and not torch.equal(f0_pred, f0)

    # Checkpoint round trip in both weight-norm key styles keeps every key and the output.
    config.save(tmp_path / "config.json")
    expected_keys = list(model.state_dict())
    for style in ("classic", "parametrizations"):
        path = tmp_path / f"G_{style}.pth"
        save_checkpoint(path, model, iteration=3, learning_rate=1e-4, key_style=style)
        stored = torch.load(path, weights_only=True)
        assert set(stored) == {"model", "iteration", "optimizer", "learning_rate"}
        if style == "classic":
            assert list(stored["model"]) == expected_keys
        else:
            assert not any(k.endswith((".weight_g", ".weight_v")) for k in stored["model"])
        reloaded = load_generator(path, tmp_path / "config.json")
        assert list(reloaded.state_dict()) == expected_keys
        out_again, _ = reloaded.infer(c, f0, uv, sid, vol=vol, deterministic=True)
        assert torch.equal(out_again, audio)


def test_shared_flow_parameters_appear_under_both_names(fixtures_dir):
    for flow in ({"use_transformer_flow": True}, {"use_transformer_flow": False}):
        model = SynthesizerTrn.from_config(tiny_config(fixtures_dir, flow_share_parameter=True, **flow))
        state = model.state_dict()
        shared = [k for k in state if k.startswith("flow.wn.")]
        assert shared
        for key in shared:
            suffix = key[len("flow.wn."):]
            for i in range(0, 2 * model.config.n_flow_layer, 2):
                assert state[f"flow.flows.{i}.enc.{suffix}"].data_ptr() == state[key].data_ptr()
        # The optimizer sees each shared tensor once.
        names = [n for n, _ in model.named_parameters()]
        assert len(names) == len(set(id(p) for p in model.parameters()))


def test_depthwise_and_snake_key_names(fixtures_dir):
    model = SynthesizerTrn.from_config(tiny_config(fixtures_dir, use_depthwise_conv=True,
                                                   vocoder_name="nsf-snake-hifigan"))
    keys = set(model.state_dict())
    assert "enc_q.enc.in_layers.0.depth_conv.weight_g" in keys
    assert "enc_q.enc.in_layers.0.point_conv.weight_v" in keys
    assert "flow.flows.0.enc.in_layers.0.depth_conv.bias" in keys
    assert "enc_q.enc.res_skip_layers.0.weight_g" in keys  # 1x1 layers stay plain convs
    for key in ("dec.snakes.0.act.alpha", "dec.snakes.0.upsample.filter", "dec.snakes.0.downsample.lowpass.filter",
                "dec.resblocks.0.activations.5.act.beta", "dec.snake_post.act.alpha"):
        assert key in keys, key
    lowpass = model.dec.snakes[0].upsample.filter
    assert lowpass.shape == (1, 1, 12) and abs(float(lowpass.sum()) - 1) < 1e-6
    assert torch.allclose(lowpass.flip(-1), lowpass)


def test_unknown_vocoder_falls_back_like_so_vits_svc(fixtures_dir):
    with pytest.warns(UserWarning, match="falls back to nsf-hifigan"):
        config = tiny_config(fixtures_dir, vocoder_name="bigvgan")
    model = SynthesizerTrn.from_config(config)
    assert type(model.dec).__name__ == "NsfHifiGan"


def test_nsf_source_assumes_44k1_whatever_the_model_rate(fixtures_dir):
    raw = tiny_config(fixtures_dir).to_dict()
    raw["data"]["sampling_rate"] = 32000
    model = SynthesizerTrn.from_config(SvcConfig.from_dict(raw))
    assert model.dec.m_source.source_sr == 44100
