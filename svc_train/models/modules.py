"""Building blocks shared by the generator's parts: weight norm, gated WaveNet stack, layer norm.

Weight-normalised layers use PyTorch's classic `weight_norm` (state-dict keys
`<layer>.weight_g` / `<layer>.weight_v`), exactly as so-vits-svc 4.1 stores them;
`svc_train.checkpoint` also reads the `parametrizations.weight.original0/1` style.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

LRELU_SLOPE = 0.1


def apply_weight_norm(module: nn.Module) -> nn.Module:
    """Weight-normalise `module.weight` (dim 0), or both halves of a depthwise-separable conv."""
    if isinstance(module, DepthwiseSeparableConv1d):
        module.depth_conv = apply_weight_norm(module.depth_conv)
        module.point_conv = apply_weight_norm(module.point_conv)
        return module
    with warnings.catch_warnings():
        # The classic form is deprecated in favour of parametrizations, but it is the one
        # whose state-dict keys so-vits-svc checkpoints use.
        warnings.simplefilter("ignore", FutureWarning)
        return torch.nn.utils.weight_norm(module, name="weight", dim=0)


class DepthwiseSeparableConv1d(nn.Module):
    """Depthwise conv (groups = in_channels) followed by a 1x1 pointwise conv.

    Keys `depth_conv.*` and `point_conv.*`, as so-vits-svc's `Depthwise_Separable_Conv1D`.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        bias: bool = True,
    ):
        super().__init__()
        self.depth_conv = nn.Conv1d(
            in_channels, in_channels, kernel_size, stride=stride, padding=padding,
            dilation=dilation, groups=in_channels, bias=bias,
        )
        self.point_conv = nn.Conv1d(in_channels, out_channels, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.point_conv(self.depth_conv(x))


def conv1d(depthwise: bool, *args, **kwargs) -> nn.Module:
    """A plain `Conv1d`, or the depthwise-separable one where so-vits-svc swaps it in."""
    return DepthwiseSeparableConv1d(*args, **kwargs) if depthwise else nn.Conv1d(*args, **kwargs)


def get_padding(kernel_size: int, dilation: int = 1) -> int:
    return (kernel_size * dilation - dilation) // 2


def gated_activation(x: torch.Tensor, cond: torch.Tensor, channels: int) -> torch.Tensor:
    """WaveNet gate: tanh(a[:channels]) * sigmoid(a[channels:]) with a = x + cond."""
    summed = x + cond
    return torch.tanh(summed[:, :channels]) * torch.sigmoid(summed[:, channels:])


class LayerNorm(nn.Module):
    """Layer norm over the channel axis of [B, C, T] (parameters `gamma`, `beta`)."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.channels = channels
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x.transpose(1, -1), (self.channels,), self.gamma, self.beta, self.eps)
        return x.transpose(1, -1)


class WN(nn.Module):
    """Non-causal gated WaveNet stack with optional global conditioning (VITS `WN`).

    x: [B, hidden, T], x_mask: [B, 1, T], g: [B, gin, 1] or None -> [B, hidden, T].
    """

    def __init__(
        self,
        hidden_channels: int,
        kernel_size: int,
        dilation_rate: int,
        n_layers: int,
        gin_channels: int = 0,
        p_dropout: float = 0.0,
        depthwise: bool = False,
    ):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"WN kernel_size must be odd, got {kernel_size}")
        self.hidden_channels = hidden_channels
        self.n_layers = n_layers
        self.gin_channels = gin_channels
        # Registration order matters: it fixes the state-dict and optimizer parameter order.
        self.in_layers = nn.ModuleList()
        self.res_skip_layers = nn.ModuleList()
        self.drop = nn.Dropout(p_dropout)
        if gin_channels:
            self.cond_layer = apply_weight_norm(nn.Conv1d(gin_channels, 2 * hidden_channels * n_layers, 1))
        for i in range(n_layers):
            dilation = dilation_rate**i
            padding = (kernel_size * dilation - dilation) // 2
            in_layer = conv1d(depthwise, hidden_channels, 2 * hidden_channels, kernel_size,
                              dilation=dilation, padding=padding)
            self.in_layers.append(apply_weight_norm(in_layer))
            res_skip_channels = 2 * hidden_channels if i < n_layers - 1 else hidden_channels
            self.res_skip_layers.append(apply_weight_norm(nn.Conv1d(hidden_channels, res_skip_channels, 1)))

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        output = torch.zeros_like(x)
        hidden = self.hidden_channels
        if g is not None:
            g = self.cond_layer(g)
        for i in range(self.n_layers):
            x_in = self.in_layers[i](x)
            if g is not None:
                cond = g[:, i * 2 * hidden:(i + 1) * 2 * hidden, :]
            else:
                cond = torch.zeros_like(x_in)
            acts = self.drop(gated_activation(x_in, cond, hidden))
            res_skip = self.res_skip_layers[i](acts)
            if i < self.n_layers - 1:
                x = (x + res_skip[:, :hidden, :]) * x_mask
                output = output + res_skip[:, hidden:, :]
            else:
                output = output + res_skip
        return output * x_mask


ActivationFactory = Callable[[int], nn.Module]
"""Builds one activation module for a channel count (nsf-snake-hifigan's `SnakeAlias`)."""


def _same_length_convs(channels: int, kernel_size: int, dilations) -> nn.ModuleList:
    """One weight-normed, length-preserving [B, C, T] -> [B, C, T] conv per dilation."""
    return nn.ModuleList(
        apply_weight_norm(nn.Conv1d(channels, channels, kernel_size, 1, dilation=d,
                                    padding=get_padding(kernel_size, d)))
        for d in dilations
    )


class _ResBlock(nn.Module):
    """Shared by the HiFiGAN residual blocks: the activation before each conv.

    `activations` is None for leaky ReLU (slope `LRELU_SLOPE`, nothing in the state dict), or
    one module per conv from an `ActivationFactory`, keys `activations.<j>` in forward order.
    """

    activations: nn.ModuleList | None

    def _register_activations(self, channels: int, count: int, activation: ActivationFactory | None) -> None:
        self.activations = None if activation is None else nn.ModuleList(activation(channels) for _ in range(count))

    def activate(self, j: int, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x, LRELU_SLOPE) if self.activations is None else self.activations[j](x)


class ResBlock1(_ResBlock):
    """HiFiGAN residual block type "1": three (dilated conv, conv) pairs. [B, C, T] -> same."""

    def __init__(self, channels: int, kernel_size: int = 3, dilation: tuple[int, ...] = (1, 3, 5),
                 activation: ActivationFactory | None = None):
        super().__init__()
        self.convs1 = _same_length_convs(channels, kernel_size, dilation[:3])
        self.convs2 = _same_length_convs(channels, kernel_size, (1, 1, 1))
        self._register_activations(channels, 6, activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for k, (c1, c2) in enumerate(zip(self.convs1, self.convs2)):
            x = c2(self.activate(2 * k + 1, c1(self.activate(2 * k, x)))) + x
        return x


class ResBlock2(_ResBlock):
    """HiFiGAN residual block type "2": two dilated convs. [B, C, T] -> same."""

    def __init__(self, channels: int, kernel_size: int = 3, dilation: tuple[int, ...] = (1, 3),
                 activation: ActivationFactory | None = None):
        super().__init__()
        self.convs = _same_length_convs(channels, kernel_size, dilation[:2])
        self._register_activations(channels, 2, activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for j, conv in enumerate(self.convs):
            x = conv(self.activate(j, x)) + x
        return x


def sequence_mask(lengths: torch.Tensor, max_length: int) -> torch.Tensor:
    """[B] lengths -> [B, max_length] bool, True inside each sequence."""
    positions = torch.arange(max_length, dtype=lengths.dtype, device=lengths.device)
    return positions.unsqueeze(0) < lengths.unsqueeze(1)
