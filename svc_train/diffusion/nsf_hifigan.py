"""The standalone NSF-HiFiGAN vocoder (the community ``nsf_hifigan`` checkpoint layout).

A pretrained vocoder is a folder with ``model`` (a torch pickle holding
``{"generator": state_dict}``, weight-normed keys ``weight_g`` / ``weight_v``) and
``config.json`` (HiFi-GAN hyper-parameters plus its mel analysis: ``sampling_rate``,
``num_mels``, ``n_fft``, ``win_size``, ``hop_size``, ``fmin``, ``fmax``). Module names
match so-vits-svc 4.1's ``vdecoder/nsf_hifigan/models.Generator`` so those files load
as they are; weight norm is folded into plain weights at load time.

Determinism: the sine source takes explicit per-frame start phases (cycles, the
convention of :mod:`svc_runtime.signal.nsf_phase`, accumulated in float64 by the
caller) and an explicit standard-normal ``noise`` [B, T*hop, 9]; without them the
phases are computed here in float64 from f0 and the noise is zero.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from svc_runtime.diffusion.mel import MelSpec
from svc_runtime.schema import read_dataclass, to_mapping
from svc_runtime.signal.nsf_phase import NSF_HARMONICS, frame_start_phases
from svc_train.models.modules import LRELU_SLOPE, ResBlock1, ResBlock2
from svc_train.models.nsf_source import (
    SINE_AMP,
    VOICED_NOISE_STD,
    phase_increments,
    sample_phases,
)
from svc_train.safe_pickle import read_weights_only
from svc_train.weight_norm import WeightNormError, fold_module, fold_state


class VocoderLoadError(ValueError):
    """A vocoder folder that cannot be loaded; the message says which file and what to do."""


@dataclass(frozen=True)
class VocoderConfig(MelSpec):
    """The subset of the community ``config.json`` that shapes the generator: its mel analysis
    (the `MelSpec` fields it inherits) and the HiFiGAN layout."""

    resblock: str = "1"
    upsample_rates: tuple[int, ...] = (8, 8, 2, 2, 2)
    upsample_kernel_sizes: tuple[int, ...] = (16, 16, 4, 4, 4)
    upsample_initial_channel: int = 512
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = field(default=((1, 3, 5), (1, 3, 5), (1, 3, 5)))

    @property
    def mel(self) -> MelSpec:
        return MelSpec(**{f.name: getattr(self, f.name) for f in fields(MelSpec)})

    @property
    def upsample_factor(self) -> int:
        return int(np.prod(self.upsample_rates))

    @classmethod
    def from_dict(cls, raw: dict, source: str = "<dict>") -> VocoderConfig:
        required = ("sampling_rate", "num_mels", "n_fft", "win_size", "hop_size", "upsample_rates",
                    "upsample_kernel_sizes", "upsample_initial_channel", "resblock_kernel_sizes",
                    "resblock_dilation_sizes")
        missing = [k for k in required if k not in raw]
        if missing:
            raise VocoderLoadError(f"{source} lacks {missing}; it must be the config.json shipped with the nsf_hifigan model")
        # null fmin / fmax mean 0 and Nyquist, as in the reference's mel code
        raw = {**raw, "fmin": raw.get("fmin") or 0.0, "fmax": raw.get("fmax") or raw["sampling_rate"] / 2}
        config = read_dataclass(cls, raw, source, error=VocoderLoadError)
        if config.upsample_factor != config.hop_size:
            raise VocoderLoadError(
                f"{source}: prod(upsample_rates) = {config.upsample_factor} must equal hop_size = {config.hop_size}"
            )
        if config.resblock not in ("1", "2"):
            raise VocoderLoadError(f"{source}: resblock must be '1' or '2', got {config.resblock!r}")
        if len(config.upsample_rates) != len(config.upsample_kernel_sizes):
            raise VocoderLoadError(f"{source}: upsample_rates and upsample_kernel_sizes differ in length")
        return config

    def to_dict(self) -> dict:
        return to_mapping(self)


class SineSource(nn.Module):
    """Harmonic sine source merged into one excitation (so-vits-svc's ``SourceModuleHnNSF``).

    Registered as ``m_source`` with its ``l_linear`` (9 -> 1) so checkpoints load.
    """

    def __init__(self, sampling_rate: int, harmonics: int = NSF_HARMONICS) -> None:
        super().__init__()
        self.sampling_rate = sampling_rate
        self.harmonics = harmonics
        self.l_linear = nn.Linear(harmonics, 1)

    def forward(self, f0: torch.Tensor, upp: int, phase: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """f0 [B, T] Hz; phase [B, T, H] cycles before each frame; noise [B, T*upp, H]. -> [B, 1, T*upp]."""
        increment = phase_increments(f0, self.sampling_rate, self.harmonics)  # [B, T, H]
        sines = torch.sin(2.0 * np.pi * sample_phases(phase, increment, upp))  # [B, T*upp, H]
        uv = (f0 > 0).to(sines.dtype).unsqueeze(-1).repeat_interleave(upp, dim=1)  # [B, T*upp, 1]
        noise_amp = uv * VOICED_NOISE_STD + (1.0 - uv) * (SINE_AMP / 3.0)
        excitation = SINE_AMP * sines * uv + noise_amp * noise
        return torch.tanh(self.l_linear(excitation)).transpose(1, 2)


class NsfHifiGanGenerator(nn.Module):
    """mel [B, num_mels, T] + f0 [B, T] -> audio [B, 1, T * hop] in [-1, 1]."""

    def __init__(self, config: VocoderConfig) -> None:
        super().__init__()
        self.config = config
        self.upp = config.upsample_factor
        self.num_kernels = len(config.resblock_kernel_sizes)
        self.m_source = SineSource(config.sampling_rate)
        c0 = config.upsample_initial_channel
        self.conv_pre = nn.Conv1d(config.num_mels, c0, 7, 1, padding=3)
        self.ups = nn.ModuleList()
        self.noise_convs = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        block = ResBlock1 if config.resblock == "1" else ResBlock2  # the generator's blocks, weight norm folded
        rates = config.upsample_rates
        for i, (u, k) in enumerate(zip(rates, config.upsample_kernel_sizes)):
            c_out = c0 // (2 ** (i + 1))
            self.ups.append(nn.ConvTranspose1d(c0 // (2**i), c_out, k, u, padding=(k - u) // 2))
            if i + 1 < len(rates):
                stride = int(np.prod(rates[i + 1 :]))
                self.noise_convs.append(nn.Conv1d(1, c_out, kernel_size=stride * 2, stride=stride, padding=stride // 2))
            else:
                self.noise_convs.append(nn.Conv1d(1, c_out, kernel_size=1))
            for kr, dil in zip(config.resblock_kernel_sizes, config.resblock_dilation_sizes):
                self.resblocks.append(fold_module(block(c_out, kr, tuple(dil))))
        self.conv_post = nn.Conv1d(c0 // (2 ** len(rates)), 1, 7, 1, padding=3)

    def forward(self, mel: torch.Tensor, f0: torch.Tensor, phase: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        source = self.m_source(f0, self.upp, phase, noise)
        x = self.conv_pre(mel)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            x = x + self.noise_convs[i](source)
            blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
            x = sum(block(x) for block in blocks) / self.num_kernels
        x = self.conv_post(F.leaky_relu(x))  # default slope 0.01, as the reference
        return torch.tanh(x)


class NsfHifiGanVocoder(nn.Module):
    """The vocoder with its mel convention: ``mel`` is natural-log (``log10=False``) or log10."""

    def __init__(self, config: VocoderConfig, log10_mel: bool = False) -> None:
        super().__init__()
        self.config = config
        self.log10_mel = log10_mel
        self.generator = NsfHifiGanGenerator(config)

    @property
    def sampling_rate(self) -> int:
        return self.config.sampling_rate

    @property
    def hop_size(self) -> int:
        return self.config.hop_size

    @property
    def num_mels(self) -> int:
        return self.config.num_mels

    def forward(
        self,
        mel: torch.Tensor,
        f0: torch.Tensor,
        phase: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """mel [B, num_mels, T] (log); f0 [B, T] Hz; phase [B, T, 9] cycles; noise [B, T*hop, 9].

        Returns audio [B, 1, T * hop]. f0 longer than the mel is cut (as so-vits-svc does).
        """
        frames = mel.size(-1)
        if f0.size(-1) < frames:
            raise ValueError(f"f0 has {f0.size(-1)} frames, fewer than the mel's {frames}")
        f0 = f0[:, :frames].float()
        if phase is None:
            phases, _ = frame_start_phases(f0.detach().cpu().numpy(), self.hop_size, source_sr=self.sampling_rate)
            phase = torch.from_numpy(phases.astype(np.float32)).to(mel.device)
        if noise is None:
            noise = torch.zeros(f0.size(0), frames * self.hop_size, NSF_HARMONICS, device=mel.device)
        if self.log10_mel:
            mel = mel * 0.434294
        return self.generator(mel, f0, phase, noise)


def load_vocoder(model_path: str | Path, config_path: str | Path | None = None, log10_mel: bool = False) -> NsfHifiGanVocoder:
    """Load the community ``nsf_hifigan/model`` (+ ``config.json`` beside it) in eval mode."""
    model_path = Path(model_path)
    config_path = Path(config_path) if config_path is not None else model_path.parent / "config.json"
    if not model_path.is_file():
        raise VocoderLoadError(
            f"NSF-HiFiGAN weights {model_path} not found; download the nsf_hifigan vocoder and put its "
            f"'model' and 'config.json' in {model_path.parent}"
        )
    if not config_path.is_file():
        raise VocoderLoadError(f"vocoder config {config_path} not found; it ships beside 'model' in the nsf_hifigan folder")
    try:
        raw = json.loads(config_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise VocoderLoadError(f"{config_path} is not valid JSON: {exc}") from exc
    config = VocoderConfig.from_dict(raw, source=str(config_path))
    checkpoint = read_weights_only(model_path, "an NSF-HiFiGAN vocoder checkpoint", VocoderLoadError)
    state = checkpoint.get("generator", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not state:
        raise VocoderLoadError(f"{model_path} holds no 'generator' state dict")
    vocoder = NsfHifiGanVocoder(config, log10_mel=log10_mel)
    try:
        folded = fold_state(state)
    except WeightNormError as exc:
        raise VocoderLoadError(f"{model_path}: {exc}") from exc
    try:
        missing, unexpected = vocoder.generator.load_state_dict(folded, strict=False)
    except RuntimeError as exc:  # shape mismatches
        raise VocoderLoadError(f"{model_path} does not match {config_path}: {exc}") from exc
    if missing or unexpected:
        raise VocoderLoadError(
            f"{model_path} does not match {config_path}: missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}"
        )
    return vocoder.eval()


WEIGHT_NORMED_PREFIXES = ("conv_pre.", "ups.", "resblocks.", "conv_post.")
"""Modules the reference wraps in weight norm (not the noise convs nor the source's linear)."""


def unfold_weight_norm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Plain weights back to the reference's ``weight_g``/``weight_v`` keys (g = ||w|| over dims 1.., v = w)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith(WEIGHT_NORMED_PREFIXES) and key.endswith(".weight"):
            base = key[: -len(".weight")]
            out[base + ".weight_g"] = value.flatten(1).norm(dim=1).view(-1, *([1] * (value.dim() - 1)))
            out[base + ".weight_v"] = value.clone()
        else:
            out[key] = value
    return out


def save_vocoder(vocoder: NsfHifiGanVocoder, folder: str | Path) -> Path:
    """Write ``folder/model`` and ``folder/config.json`` in the community layout (weight-normed keys),
    loadable by so-vits-svc's ``vdecoder/nsf_hifigan`` as well as by :func:`load_vocoder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"generator": unfold_weight_norm(vocoder.generator.state_dict())}, folder / "model")
    (folder / "config.json").write_text(json.dumps(vocoder.config.to_dict(), indent=2), encoding="utf-8")
    return folder / "model"


__all__ = [
    "NsfHifiGanVocoder",
    "NsfHifiGanGenerator",
    "VocoderConfig",
    "VocoderLoadError",
    "load_vocoder",
    "save_vocoder",
    "unfold_weight_norm",
]
