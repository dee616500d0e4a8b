"""Dataset and collate: alignment, so-vits-svc's 800/790-frame cut, volume augmentation, padding, errors."""

import pytest
import torch
from test_training_ddp import HOP, UNITS, prepared_dataset

from svc_train.config import SvcConfig
from svc_train.data.dataset import SvcDataset, collate
from svc_train.data.features import FeatureError
from svc_train.mel import spectrogram_torch


@pytest.fixture(scope="module")
def config_path(tmp_path_factory):
    return prepared_dataset(tmp_path_factory.mktemp("ds"), clips=3, frames=40)


def _config(path, **train) -> SvcConfig:
    cfg = SvcConfig.load(path)
    raw = cfg.to_dict()
    raw["train"].update(train)
    return SvcConfig.from_dict(raw)


def test_item_shapes_alignment_and_speaker(config_path):
    config = _config(config_path)
    ds = SvcDataset(config.data.training_files, config)
    item = ds[0]
    t = item.f0.shape[0]
    assert t == 40
    assert item.c.shape == (UNITS, t)  # 20 unit frames stretched to 40 (nearest)
    assert item.spec.shape == (1025, t) and item.audio.shape == (1, t * HOP)
    assert item.uv.shape == item.volume.shape == (t,) if item.volume is not None else True
    assert int(item.speaker) == config.spk[ds.paths[0].parent.name]
    # nearest alignment of 20 -> 40 frames repeats every unit frame twice
    torch.testing.assert_close(item.c[:, 0], item.c[:, 1])


def test_volume_augmentation_scales_audio_volume_and_spectrogram_together(config_path):
    raw = _config(config_path).to_dict()
    raw["train"]["vol_aug"] = True
    raw["model"]["vol_embedding"] = True
    config = SvcConfig.from_dict(raw)
    ds = SvcDataset(config.data.training_files, config, vol_aug=True)
    plain = ds.load(0)
    scaled = []
    for epoch in range(8):
        ds.set_epoch(epoch)
        item = ds[0]
        gain = float(item.volume[5] / plain.volume[5])
        torch.testing.assert_close(item.audio, plain.audio * gain, rtol=1e-5, atol=1e-6)
        expected_spec = spectrogram_torch(plain.audio * gain, 2048, 44100, HOP, 2048)[0]
        torch.testing.assert_close(item.spec, expected_spec, rtol=1e-4, atol=1e-4)
        assert 0.1 - 1e-6 <= gain <= 1 / float(plain.audio.abs().max()) + 1e-3
        scaled.append(abs(gain - 1) > 1e-6)
    assert any(scaled) and not all(scaled)  # about half of the draws augment
    # Same (seed, epoch, index), same draw: every process and worker agrees.
    ds.set_epoch(3)
    torch.testing.assert_close(ds[0].audio, ds[0].audio)


def test_long_clips_are_cut_to_790_frames(tmp_path):
    config_path = prepared_dataset(tmp_path, speakers=("ann",), clips=2, frames=820)
    config = _config(config_path)
    ds = SvcDataset(config.data.training_files, config)
    item = ds[0]
    assert item.f0.shape[0] == item.c.shape[1] == item.spec.shape[1] == 790
    assert item.audio.shape[1] == 790 * HOP


def test_collate_sorts_longest_first_and_pads_with_zeros(config_path):
    config = _config(config_path)
    ds = SvcDataset(config.data.training_files, config)
    a, b = ds[0], ds[1]
    short = type(a)(c=a.c[:, :30], f0=a.f0[:30], spec=a.spec[:, :30], audio=a.audio[:, : 30 * HOP],
                    speaker=a.speaker, uv=a.uv[:30], volume=None)
    batch = collate([short, b])
    assert batch.lengths.tolist() == [40, 30]
    assert batch.c.shape == (2, UNITS, 40) and batch.audio.shape == (2, 1, 40 * HOP)
    assert batch.volume is None
    assert torch.all(batch.c[1, :, 30:] == 0) and torch.all(batch.spec[1, :, 30:] == 0)
    torch.testing.assert_close(batch.f0[1, :30], short.f0)


def test_clips_shorter_than_a_segment_are_left_out_and_listed(config_path, tmp_path):
    config = _config(config_path)
    long_config = _config(prepared_dataset(tmp_path, speakers=("ann",), clips=2, frames=60))
    mixed = tmp_path / "mixed.txt"
    lines = [config.data.training_files, long_config.data.training_files]
    mixed.write_text("".join(open(f).read() for f in lines))
    raw = config.to_dict()
    raw["spk"] = {"ann": 0, "ben": 1}
    ds = SvcDataset(mixed, SvcConfig.from_dict(raw), min_frames=50)
    assert [p.parent.parent.parent.name for p in ds.paths] == [tmp_path.name]  # only the 60-frame clip
    assert len(ds.too_short) == 4  # the 40-frame clips, listed for the report
    with pytest.raises(ValueError, match="no usable clips"):
        SvcDataset(config.data.training_files, config, min_frames=41)


def test_unit_size_mismatch_is_a_clear_error(config_path):
    raw = _config(config_path).to_dict()
    raw["model"]["ssl_dim"] = 768
    config = SvcConfig.from_dict(raw)
    ds = SvcDataset(config.data.training_files, config)
    with pytest.raises(FeatureError, match="units have 16 channels, the config's ssl_dim is 768"):
        ds[0]


def test_unknown_speaker_folder_is_a_clear_error(config_path):
    raw = _config(config_path).to_dict()
    raw["spk"] = {"someone_else": 0}
    raw["model"]["n_speakers"] = 1
    config = SvcConfig.from_dict(raw)
    with pytest.raises(ValueError, match="not in the config's spk map"):
        SvcDataset(config.data.training_files, config)


def test_all_in_memory_dataset_gives_the_same_items(config_path):
    config = _config(config_path)
    on_disk = SvcDataset(config.data.training_files, config)
    in_memory = SvcDataset(config.data.training_files, config, all_in_mem=True)
    assert in_memory.cache is not None and len(in_memory.cache) == len(on_disk)
    for index in range(len(on_disk)):
        a, b = on_disk[index], in_memory[index]
        for field in ("c", "f0", "spec", "audio", "speaker", "uv"):
            torch.testing.assert_close(getattr(a, field), getattr(b, field), rtol=0, atol=0)
