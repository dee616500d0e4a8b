"""svc_train's one weight-norm fold: state dicts in both key styles and modules, equal to torch's own."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from svc_train.models.modules import apply_weight_norm
from svc_train.weight_norm import WeightNormError, fold_module, fold_state


def layers() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv1d(4, 6, 3), nn.Conv1d(6, 1, 5), nn.ConvTranspose1d(1, 3, 4, stride=2))


@pytest.mark.parametrize("style", ["classic", "parametrizations"])
def test_fold_state_gives_the_weights_torch_computes(style):
    normed = layers()
    for i, layer in enumerate(normed):
        if style == "classic":
            apply_weight_norm(layer)
        else:
            torch.nn.utils.parametrizations.weight_norm(layer)
        with torch.no_grad():  # a gain that is not the initial ||v||, so the fold matters
            (layer.weight_g if style == "classic" else layer.parametrizations.weight.original0).mul_(1.5 + i)
    normed(torch.zeros(1, 4, 20))  # classic weight norm recomputes `weight` in a forward pre-hook
    expected = {f"{i}.weight": layer.weight.detach().clone() for i, layer in enumerate(normed)}
    folded = fold_state(normed.state_dict())
    plain = layers()
    plain.load_state_dict(folded, strict=True)
    for key, weight in expected.items():
        torch.testing.assert_close(folded[key], weight, rtol=1e-6, atol=1e-7)
    x = torch.randn(2, 4, 20)
    torch.testing.assert_close(plain(x), normed(x), rtol=1e-5, atol=1e-6)
    # fold_module gives the same plain module in place
    torch.testing.assert_close(fold_module(normed)(x), plain(x), rtol=1e-5, atol=1e-6)
    assert not any("weight_g" in k or "parametrizations" in k for k in normed.state_dict())


def test_fold_state_by_prefix_and_broken_pairs():
    state = {"a.weight_g": torch.ones(2, 1), "a.weight_v": torch.tensor([[3.0, 4.0], [0.0, 2.0]]),
             "b.weight_g": torch.ones(2, 1), "b.weight_v": torch.ones(2, 2)}
    folded = fold_state(state, "a.")
    assert sorted(folded) == ["a.weight", "b.weight_g", "b.weight_v"]
    torch.testing.assert_close(folded["a.weight"], torch.tensor([[0.6, 0.8], [0.0, 1.0]]))
    with pytest.raises(WeightNormError, match="a.weight_g has no direction a.weight_v"):
        fold_state({"a.weight_g": torch.ones(2, 1)})
    with pytest.raises(WeightNormError, match=r"gain \(3, 1\) is not a weight-norm gain of \(2, 2\)"):
        fold_state({"a.weight_g": torch.ones(3, 1), "a.weight_v": torch.ones(2, 2)})
