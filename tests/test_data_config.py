"""`svc-train config`: speakers from folders, seeded split, so-vits-svc 4.1 config from the templates."""

import json

import numpy as np
import pytest
import soundfile
from typer.testing import CliRunner

from svc_train.cli import app
from svc_train.data.config_builder import apply_override, config_template, read_filelist

FIXTURE_KEYS = {  # the keys of shared/reference/sovits41_small/config.json ("every key of the 4.1 template")
    'train': {'all_in_mem', 'batch_size', 'betas', 'c_kl', 'c_mel', 'epochs', 'eps', 'eval_interval', 'fp16_run', 'half_type', 'init_lr_ratio', 'keep_ckpts', 'learning_rate', 'log_interval', 'lr_decay', 'max_speclen', 'port', 'seed', 'segment_size', 'use_sr', 'vol_aug', 'warmup_epochs'},
    'data': {'filter_length', 'hop_length', 'max_wav_value', 'mel_fmax', 'mel_fmin', 'n_mel_channels', 'sampling_rate', 'training_files', 'unit_interpolate_mode', 'validation_files', 'win_length'},
    'model': {'filter_channels', 'flow_share_parameter', 'gin_channels', 'hidden_channels', 'inter_channels', 'kernel_size', 'n_flow_layer', 'n_heads', 'n_layers', 'n_layers_q', 'n_layers_trans_flow', 'n_speakers', 'p_dropout', 'resblock', 'resblock_dilation_sizes', 'resblock_kernel_sizes', 'speaker_embedding', 'speech_encoder', 'ssl_dim', 'upsample_initial_channel', 'upsample_kernel_sizes', 'upsample_rates', 'use_automatic_f0_prediction', 'use_depthwise_conv', 'use_spectral_norm', 'use_transformer_flow', 'vocoder_name', 'vol_embedding'},
}


def _dataset(root, speakers):
    for name, count in speakers.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            soundfile.write(root / name / f"{i}.wav", np.zeros(44100, np.float32) + 0.01, 44100, subtype="PCM_16")
    soundfile.write(root / "bob" / "tiny.wav", np.zeros(4410, np.float32), 44100)  # 0.1 s: skipped


@pytest.mark.parametrize("size", ["standard", "tiny"])
def test_templates_have_every_41_key(size):
    config = config_template(size)
    assert {k: set(v) for k, v in config.items() if k != "spk"} == FIXTURE_KEYS
    if size == "tiny":
        assert config["model"]["use_depthwise_conv"] and config["model"]["flow_share_parameter"]
        assert config["model"]["upsample_initial_channel"] == 400


def test_config_cli_writes_lists_and_config(tmp_path):
    data = tmp_path / "dataset"
    _dataset(data, {"bob": 4, "alice": 3, "carol": 1})
    out = tmp_path / "configs" / "config.json"
    args = ["config", str(data), "-o", str(out), "--filelists", str(tmp_path / "lists"), "--size", "tiny"]
    args += ["--speech-encoder", "vec256l9", "--vol-aug", "--set", "train.batch_size=2", "--set", "model.n_layers=2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    config = json.loads(out.read_text())
    assert config["spk"] == {"alice": 0, "bob": 1, "carol": 2}  # sorted folder order
    assert config["model"]["n_speakers"] == 3
    assert config["model"]["ssl_dim"] == config["model"]["gin_channels"] == 256
    assert config["model"]["vol_embedding"] and config["train"]["vol_aug"]
    assert config["train"]["batch_size"] == 2 and config["model"]["n_layers"] == 2
    train = read_filelist(tmp_path / "lists" / "train.txt")
    val = read_filelist(tmp_path / "lists" / "val.txt")
    assert config["data"]["training_files"] == str((tmp_path / "lists" / "train.txt").resolve())
    # 2 held out for bob and alice, none for carol (who keeps her single clip for training).
    assert len(val) == 4 and len(train) == 4
    assert sorted(p.parent.name for p in val) == ["alice", "alice", "bob", "bob"]
    assert all(p.is_absolute() and p.exists() for p in train + val)
    assert not set(train) & set(val)
    assert "tiny.wav" in result.output.replace("\n", "")
    # Same folders, same split.
    CliRunner().invoke(app, args)
    assert read_filelist(tmp_path / "lists" / "val.txt") == val


def test_override_errors_name_the_problem():
    config = config_template("standard")
    with pytest.raises(ValueError, match="no key 'batchsize'"):
        apply_override(config, "train.batchsize=3")
    with pytest.raises(ValueError, match="takes int"):
        apply_override(config, "train.batch_size=abc")
    apply_override(config, "train.learning_rate=1")  # int where float is expected is fine
    assert config["train"]["learning_rate"] == 1


def test_config_cli_rejects_empty_dataset(tmp_path):
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(app, ["config", str(tmp_path / "empty"), "-o", str(tmp_path / "c.json")])
    assert result.exit_code != 0
    assert "no speaker folder" in result.output.replace("\n", "")
