"""MultiPeriodDiscriminator: so-vits-svc 4.1 key names, shapes and dtypes, and output structure."""

from pathlib import Path

import pytest
import torch

from svc_train.models.discriminator import DiscriminatorP, MultiPeriodDiscriminator

KEYS_TSV = Path(__file__).parent / "fixtures" / "sovits41_discriminator" / "keys_d.tsv"


def _reference_rows() -> list[tuple[str, tuple[int, ...], str]]:
    rows = []
    for line in KEYS_TSV.read_text().splitlines()[1:]:
        model, key, shape, dtype = line.split("\t")
        assert model == "D"
        rows.append((key, tuple(int(s) for s in shape.split("x")), dtype))
    return rows


def test_state_dict_matches_reference_keys_shapes_and_order():
    reference = _reference_rows()
    assert len(reference) == 111
    state = MultiPeriodDiscriminator(use_spectral_norm=False).state_dict()
    ours = [(k, tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in state.items()]
    assert ours == reference
    assert sum(v.numel() for v in state.values()) == 46_747_132  # the fixture README's stated size


def test_spectral_norm_variant_uses_spectral_norm_keys():
    state = MultiPeriodDiscriminator(use_spectral_norm=True, channel_scale=0.125).state_dict()
    assert "discriminators.0.convs.0.weight_orig" in state
    assert "discriminators.0.convs.0.weight_u" in state
    assert not any(k.endswith("weight_g") for k in state)


def test_forward_structure_and_period_padding():
    torch.manual_seed(0)
    disc = MultiPeriodDiscriminator(channel_scale=0.25)  # same structure, a sixteenth of the compute
    y = torch.randn(2, 1, 1000) * 0.1  # 1000 is not a multiple of 3, 7 or 11: exercises reflect padding
    y_hat = torch.randn(2, 1, 1000) * 0.1
    with torch.no_grad():
        d_r, d_g, f_r, f_g = disc(y, y_hat)
    assert len(d_r) == len(d_g) == len(f_r) == len(f_g) == 6
    assert [len(f) for f in f_r] == [7, 6, 6, 6, 6, 6]
    for real, fake in zip(d_r, d_g):
        assert real.shape == fake.shape and real.shape[0] == 2
    # Each period discriminator sees a [T/p, p] image: its last feature map keeps width p.
    for period, fmap in zip((2, 3, 5, 7, 11), f_r[1:]):
        assert fmap[-1].shape[-1] == period
    # Real and generated inputs go through the same weights: identical inputs give identical outputs.
    with torch.no_grad():
        same_r, same_g, _, _ = disc(y, y)
    for a, b in zip(same_r, same_g):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_period_discriminator_rejects_nothing_shorter_than_period():
    disc = DiscriminatorP(5)
    out, fmap = disc(torch.randn(1, 1, 12))
    assert out.shape[0] == 1 and len(fmap) == 6


@pytest.mark.parametrize("use_spectral_norm", [False, True])
def test_gradients_reach_every_parameter(use_spectral_norm):
    torch.manual_seed(0)
    disc = MultiPeriodDiscriminator(use_spectral_norm, channel_scale=0.125)
    d_r, _, _, _ = disc(torch.randn(1, 1, 512), torch.randn(1, 1, 512))
    sum(o.sum() for o in d_r).backward()
    missing = [n for n, p in disc.named_parameters() if p.grad is None]
    assert missing == []


def test_narrowed_discriminator_for_smoke_tests_runs_and_is_much_smaller():
    disc = MultiPeriodDiscriminator(channel_scale=0.125)
    n_params = sum(p.numel() for p in disc.parameters())
    assert n_params < 46_747_132 / 40
    d_r, d_g, f_r, _ = disc(torch.randn(1, 1, 777), torch.randn(1, 1, 777))
    assert len(d_r) == 6 and [len(f) for f in f_r] == [7, 6, 6, 6, 6, 6]
    with pytest.raises(ValueError, match="channel_scale"):
        MultiPeriodDiscriminator(channel_scale=2.0)
