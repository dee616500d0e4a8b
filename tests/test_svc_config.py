"""so-vits-svc 4.1 config.json as typed dataclasses: round trip, 4.0-era defaults, errors that name the field."""

from __future__ import annotations

import json

import pytest

from svc_train.config import ConfigError, SvcConfig


@pytest.fixture()
def raw(fixtures_dir):
    return json.loads((fixtures_dir / "sovits41_small" / "config.json").read_text())


def test_round_trip_keeps_layout_and_order(fixtures_dir, raw, tmp_path):
    config = SvcConfig.load(fixtures_dir / "sovits41_small" / "config.json")
    out = config.to_dict()
    assert out == raw
    for section in ("train", "data", "model"):
        assert list(out[section]) == list(raw[section])
    config.save(tmp_path / "config.json")
    assert SvcConfig.load(tmp_path / "config.json") == config
    assert config.model.upsample_rates == (8, 8, 2, 2, 2)
    assert config.train.betas == (0.8, 0.99)
    assert (config.spec_channels, config.segment_frames, config.hop_length) == (1025, 20, 512)


def test_unknown_keys_are_kept(raw):
    raw["model"]["my_note"] = "kept"
    raw["extra_section"] = {"a": 1}
    out = SvcConfig.from_dict(raw).to_dict()
    assert out["model"]["my_note"] == "kept" and out["extra_section"] == {"a": 1}


def test_older_configs_get_so_vits_svc_defaults(raw):
    for key in ("vol_embedding", "use_automatic_f0_prediction", "vocoder_name", "speech_encoder",
                "use_depthwise_conv", "flow_share_parameter", "use_transformer_flow", "n_flow_layer",
                "n_layers_trans_flow", "speaker_embedding", "n_layers_q", "use_spectral_norm"):
        del raw["model"][key]
    del raw["data"]["unit_interpolate_mode"]
    for key in ("half_type", "all_in_mem", "vol_aug"):
        del raw["train"][key]
    config = SvcConfig.from_dict(raw)
    m = config.model
    assert (m.vol_embedding, m.use_automatic_f0_prediction, m.vocoder_name, m.speech_encoder) == (
        False, True, "nsf-hifigan", "vec768l12")
    assert (m.n_flow_layer, m.n_layers_trans_flow, m.use_transformer_flow, m.flow_share_parameter) == (4, 3, False, False)
    assert config.data.unit_interpolate_mode == "left"
    assert (config.train.half_type, config.train.all_in_mem, config.train.vol_aug) == ("fp16", False, False)


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("model", "hidden_channels", None, "missing model.hidden_channels"),
        ("model", "hidden_channels", "192", 'model.hidden_channels must be an integer, got "192"'),
        ("model", "use_transformer_flow", 1, "model.use_transformer_flow must be true/false"),
        ("model", "upsample_rates", [8, "8"], r"model.upsample_rates\[1\] must be an integer"),
        ("train", "betas", [0.8], "train.betas must have 2 entries"),
        ("data", "sampling_rate", 44100.0, "data.sampling_rate must be an integer"),
        ("data", "hop_length", 256, "upsample_rates multiply to 512 but data.hop_length is 256"),
        ("model", "resblock", "3", 'model.resblock must be "1" or "2"'),
        ("model", "n_speakers", 1, r"spk.bob = 1 is outside 0..model.n_speakers-1"),
        ("data", "unit_interpolate_mode", "cubic", "data.unit_interpolate_mode must be one of"),
    ],
)
def test_errors_name_the_field_and_file(raw, tmp_path, section, key, value, message):
    if value is None:
        del raw[section][key]
    else:
        raw[section][key] = value
    path = tmp_path / "config.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match=message) as info:
        SvcConfig.load(path)
    assert str(path) in str(info.value)


def test_missing_section_file_and_bad_json(raw, tmp_path):
    del raw["spk"]
    with pytest.raises(ConfigError, match="missing section 'spk'"):
        SvcConfig.from_dict(raw)
    with pytest.raises(ConfigError, match="config file not found"):
        SvcConfig.load(tmp_path / "nope.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ConfigError, match="broken.json: not valid JSON"):
        SvcConfig.load(tmp_path / "broken.json")


def test_null_mel_fmax_is_accepted(raw):
    raw["data"]["mel_fmax"] = None
    assert SvcConfig.from_dict(raw).data.mel_fmax is None
