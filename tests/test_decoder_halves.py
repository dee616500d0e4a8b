"""`DecoderHalves`: the decoder's later stages run as two overlapping halves give the whole-window samples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

SMALL = Path(__file__).parent / "fixtures" / "sovits41_small"
SPLIT_TOLERANCE = 2e-6
"""Max abs difference, halves vs whole (measured 1.2e-7 on the standard size: convolution blocking only)."""


def _decoder(tmp_path: Path, **model_changes):
    from svc_train.checkpoint import build_generator
    from svc_train.config import SvcConfig

    torch.set_num_threads(1)
    config = SvcConfig.load(SMALL / "config.json").replace_model(**model_changes)
    (tmp_path / "config.json").write_text(json.dumps(config.to_dict()))
    torch.manual_seed(0)
    model = build_generator(tmp_path / "config.json").eval()
    with torch.no_grad():
        for parameter in model.dec.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return model.dec, config.model.gin_channels


def _inputs(dec, gin: int, batch: int, frames: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, dec.conv_pre.in_channels, frames, generator=g),
            100.0 + 300.0 * torch.rand(batch, frames, generator=g),
            torch.randn(batch, gin, frames, generator=g),
            torch.rand(batch, frames, 9, generator=g),
            torch.randn(batch, frames * dec.hop, 9, generator=g))


def _both(dec, halves, inputs):
    x, f0, g, phase, sine_noise = inputs
    with torch.no_grad():
        whole = dec(x, f0, g, phase=phase, sine_noise=sine_noise)
        split = halves(x, f0, g, phase, sine_noise)
    assert split.shape == whole.shape
    return float((split - whole).abs().max()), float(whole.abs().max())


@pytest.mark.parametrize("vocoder, channels, first", [
    ("nsf-hifigan", 256, 1),  # the standard layout: stages of 128 channels and more stay whole
    ("nsf-hifigan", 64, 0),  # every stage <= 64 channels: the whole decoder is split
    ("nsf-snake-hifigan", 32, 0),
])
def test_halves_equal_the_whole_window(tmp_path, vocoder, channels, first):
    from svc_export.graphs import DecoderHalves

    dec, gin = _decoder(tmp_path, vocoder_name=vocoder, upsample_initial_channel=channels)
    halves = DecoderHalves(dec)
    assert halves.first == first and 2 <= halves.halo <= 40
    for frames in (halves.min_frames, halves.min_frames + 7):  # split: even and odd lengths
        error, peak = _both(dec, halves, _inputs(dec, gin, 1, frames))
        assert peak > 1e-2 and error <= SPLIT_TOLERANCE, f"{frames} frames: {error}"
    # not split: a short window, and a batch of two long windows, run the decoder as they are (bit for bit
    # but for torch's choice of convolution kernel on a re-strided view)
    assert _both(dec, halves, _inputs(dec, gin, 1, halves.min_frames - 1))[0] <= SPLIT_TOLERANCE
    assert _both(dec, halves, _inputs(dec, gin, 2, halves.min_frames + 3))[0] <= SPLIT_TOLERANCE


def test_the_split_starts_at_the_first_single_unit_stage_and_its_halo_matters(tmp_path):
    """The stages from the first <= 64-channel one are split (the earlier ones reach much further, and are
    two or more thread units already); without the halo the cut is audible."""
    from svc_export.graphs import MLAS_FILTER_SET, DecoderHalves, decoder_reach_frames

    dec, gin = _decoder(tmp_path, upsample_initial_channel=256)
    halves = DecoderHalves(dec)
    channels = [up.out_channels for up in dec.ups]
    assert channels[halves.first] <= MLAS_FILTER_SET < channels[halves.first - 1] and halves.first >= 1
    assert decoder_reach_frames(dec, halves.first) < halves.halo < decoder_reach_frames(dec)
    inputs = _inputs(dec, gin, 1, halves.min_frames + 1)
    halves.halo = 0
    assert _both(dec, halves, inputs)[0] > 1e-2


def test_parity_runs_cover_the_split_decoder(tmp_path):
    from svc_export.graphs import DecoderHalves
    from svc_export.plans import CONVERTER_LENGTHS, GENERATOR_LENGTHS, split_parity_lengths

    dec, _ = _decoder(tmp_path)
    halves = DecoderHalves(dec)
    for base in (GENERATOR_LENGTHS, CONVERTER_LENGTHS):
        lengths = split_parity_lengths(base, halves)
        assert lengths[0] < halves.min_frames <= lengths[1] and lengths[2:] == base[2:]
