"""`DecoderHalves`: a long single window decoded as two overlapping halves gives the whole-window samples."""

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


@pytest.mark.parametrize("vocoder", ["nsf-hifigan", "nsf-snake-hifigan"])
def test_halves_equal_the_whole_window(tmp_path, vocoder):
    from svc_export.graphs import DecoderHalves

    changes = {"vocoder_name": vocoder, "upsample_initial_channel": 32} if vocoder != "nsf-hifigan" else {}
    dec, gin = _decoder(tmp_path, **changes)
    halves = DecoderHalves(dec)
    assert 8 <= halves.halo <= 40
    for frames in (halves.min_frames, halves.min_frames + 7):  # split: even and odd lengths
        error, peak = _both(dec, halves, _inputs(dec, gin, 1, frames))
        assert peak > 1e-2 and error <= SPLIT_TOLERANCE, f"{frames} frames: {error}"
    # not split: a short window, and a batch of two long windows, run the decoder as they are
    assert _both(dec, halves, _inputs(dec, gin, 1, halves.min_frames - 1))[0] == 0.0
    assert _both(dec, halves, _inputs(dec, gin, 2, halves.min_frames + 3))[0] == 0.0


def test_a_halo_short_of_the_reach_changes_the_samples(tmp_path):
    """The halo is what makes the halves exact: without it the cut is audible, with a third of it the
    samples near the cut are still off by more than the tolerance (1.7e-5 measured)."""
    from svc_export.graphs import DecoderHalves

    dec, gin = _decoder(tmp_path)
    halves = DecoderHalves(dec)
    inputs = _inputs(dec, gin, 1, halves.min_frames + 1)
    full = halves.halo
    halves.halo = 0
    assert _both(dec, halves, inputs)[0] > 1e-2
    halves.halo = full // 3
    assert _both(dec, halves, inputs)[0] > 4 * SPLIT_TOLERANCE


def test_parity_runs_cover_the_split_decoder(tmp_path):
    from svc_export.graphs import DecoderHalves
    from svc_export.plans import CONVERTER_LENGTHS, GENERATOR_LENGTHS, split_parity_lengths

    dec, _ = _decoder(tmp_path)
    halves = DecoderHalves(dec)
    for base in (GENERATOR_LENGTHS, CONVERTER_LENGTHS):
        lengths = split_parity_lengths(base, halves)
        assert lengths[0] < halves.min_frames <= lengths[1] and lengths[2:] == base[2:]
