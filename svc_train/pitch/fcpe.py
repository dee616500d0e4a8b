"""FCPE pitch network (torchfcpe 0.0.4's ``CFNaiveMelPE``, conv-only): log-mel -> salience.

The weights are the ones the ``torchfcpe`` wheel ships
(``torchfcpe/assets/fcpe_c_v001.pt``); this module finds that file on disk
without importing torchfcpe (whose import needs torchaudio). Module names match
the checkpoint so it loads strictly; the weight-normed output projection is
folded into a plain ``Linear`` at load time (same arithmetic as torch's weight
norm), which keeps the graph exportable.

Only ``conv_only`` checkpoints are supported (the shipped one is): the attention
variant uses a randomly drawn Performer projection that this port does not carry.

Shapes: ``mel [B, T, n_mels]`` (natural log), ``salience [B, T, out_dims]`` in
(0, 1); bins are evenly spaced in cents from f0_min to f0_max (see
``svc_runtime.pitch.decode``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from svc_runtime.vocabulary import PITCH_HOP, PITCH_SAMPLE_RATE
from svc_train.pitch._checkpoint import bundled_weights, require_checkpoint_file
from svc_train.pitch.mel import LogMelSpectrogram, MelConfig
from svc_train.safe_pickle import read_weights_only
from svc_train.weight_norm import fold_state

BUNDLED_WEIGHTS = "torchfcpe/assets/fcpe_c_v001.pt"
BUNDLED_SHA256 = "b9aeaeb673436eeda50ceafd632aa681aa63417e52eae4207503d180c9b10015"
INSTALL_HINT = "Install the weights wheel with `pip install --no-deps torchfcpe==0.0.4` (do not install torchaudio)."

_UNUSED_BUFFERS = ("cent_table", "gaussian_blurred_cent_mask")  # recomputed by the decoder


@dataclass(frozen=True)
class FcpeConfig:
    """Model sizes and mel settings from the checkpoint's ``config_dict``."""

    n_mels: int = 128
    out_dims: int = 360
    hidden_dims: int = 512
    n_layers: int = 6
    f0_min: float = 32.7
    f0_max: float = 1975.5
    sample_rate: int = PITCH_SAMPLE_RATE
    n_fft: int = 1024
    hop_length: int = PITCH_HOP
    mel_fmin: float = 0.0
    mel_fmax: float = 8000.0

    @classmethod
    def from_config_dict(cls, config: dict[str, Any], source: str) -> "FcpeConfig":
        try:
            model, mel = config["model"], config["mel"]
            if model.get("type") != "CFNaiveMelPE":
                raise ValueError(f"model type {model.get('type')!r} is not 'CFNaiveMelPE'")
            if not model.get("conv_only", False):
                raise ValueError("only conv_only FCPE checkpoints are supported (attention layers are not ported)")
            if model.get("use_harmonic_emb", False):
                raise ValueError("use_harmonic_emb checkpoints are not supported")
            if mel.get("type", "default") not in (None, "default", "none", "None"):
                raise ValueError(f"mel type {mel.get('type')!r} is not supported (only the default log-mel)")
            if mel["win_size"] != mel["n_fft"]:
                raise ValueError(f"win_size {mel['win_size']} != n_fft {mel['n_fft']} is not supported")
            return cls(
                n_mels=int(mel["num_mels"]),
                out_dims=int(model["out_dims"]),
                hidden_dims=int(model["hidden_dims"]),
                n_layers=int(model["n_layers"]),
                f0_min=float(model["f0_min"]),
                f0_max=float(model["f0_max"]),
                sample_rate=int(mel["sr"]),
                n_fft=int(mel["n_fft"]),
                hop_length=int(mel["hop_size"]),
                mel_fmin=float(mel["fmin"] if mel.get("fmin") is not None else 0.0),
                mel_fmax=float(mel["fmax"] if mel.get("fmax") is not None else int(mel["sr"]) / 2),
            )
        except (KeyError, TypeError) as error:
            raise ValueError(f"{source}: config_dict lacks a needed field ({error!r})") from error
        except ValueError as error:
            raise ValueError(f"{source}: {error}") from error

    @property
    def mel(self) -> MelConfig:
        """torchfcpe's MelModule: Slaney mel, sqrt(power + 1e-9), log(max(x, 1e-5)), ``fcpe`` framing."""
        return MelConfig(
            sample_rate=self.sample_rate, n_fft=self.n_fft, hop_length=self.hop_length,
            n_mels=self.n_mels, fmin=self.mel_fmin, fmax=self.mel_fmax, htk=False,
            framing="fcpe", clip=1e-5, magnitude_eps=1e-9,
        )


class Transpose(nn.Module):
    def __init__(self, dim0: int, dim1: int) -> None:
        super().__init__()
        self.dims = (dim0, dim1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(*self.dims)


class DepthWiseConv1d(nn.Module):
    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class ConformerConvModule(nn.Module):
    """LayerNorm, pointwise conv + GLU, depthwise conv (31), SiLU, pointwise conv. [B, T, C] -> [B, T, C]."""

    def __init__(self, dim: int, expansion: int = 2, kernel_size: int = 31) -> None:
        super().__init__()
        inner = dim * expansion
        self.net = nn.Sequential(
            nn.LayerNorm(dim),
            Transpose(1, 2),
            nn.Conv1d(dim, inner * 2, 1),
            nn.GLU(dim=1),
            DepthWiseConv1d(inner, kernel_size),
            nn.SiLU(),
            nn.Conv1d(inner, dim, 1),
            Transpose(1, 2),
            nn.Dropout(0.0),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConvOnlyEncoderLayer(nn.Module):
    """``x + conv_module(x)``. ``norm`` belongs to the (absent) attention branch; kept for key parity."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conformer = ConformerConvModule(dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conformer(x)


class ConvOnlyEncoder(nn.Module):
    def __init__(self, dim: int, n_layers: int) -> None:
        super().__init__()
        self.encoder_layers = nn.ModuleList(ConvOnlyEncoderLayer(dim) for _ in range(n_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.encoder_layers:
            x = layer(x)
        return x


class FCPE(nn.Module):
    """CFNaiveMelPE (conv-only): ``forward(mel [B, T, n_mels]) -> salience [B, T, out_dims]``."""

    def __init__(self, config: FcpeConfig) -> None:
        super().__init__()
        self.config = config
        hidden = config.hidden_dims
        self.input_stack = nn.Sequential(
            nn.Conv1d(config.n_mels, hidden, 3, padding=1),
            nn.GroupNorm(4, hidden),
            nn.LeakyReLU(),
            nn.Conv1d(hidden, hidden, 3, padding=1),
        )
        self.net = ConvOnlyEncoder(hidden, config.n_layers)
        self.norm = nn.LayerNorm(hidden)
        self.output_proj = nn.Linear(hidden, config.out_dims)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.input_stack(mel.transpose(1, 2)).transpose(1, 2)
        x = self.norm(self.net(x))
        return torch.sigmoid(self.output_proj(x))


class FcpeFromAudio(nn.Module):
    """Mel front end + FCPE: ``forward(audio [B, N] 16 kHz) -> salience [B, N // 160 + 1, 360]``."""

    def __init__(self, network: FCPE) -> None:
        super().__init__()
        self.mel = LogMelSpectrogram(network.config.mel)
        self.network = network

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.network(self.mel(audio).transpose(1, 2))


def bundled_fcpe_checkpoint(verify: bool = True) -> Path:
    """Path of the FCPE weights shipped in the torchfcpe 0.0.4 wheel (torchfcpe is not imported).

    ``verify``: check the file's sha256 against the 0.0.4 release.
    """
    return bundled_weights(BUNDLED_WEIGHTS, release="torchfcpe 0.0.4", network="FCPE",
                           sha256=BUNDLED_SHA256 if verify else None, hint=INSTALL_HINT)


def load_fcpe(path: str | Path | None = None) -> FCPE:
    """Load an FCPE checkpoint (torchfcpe layout: ``model`` + ``config_dict``); eval mode.

    ``path=None`` uses the torchfcpe wheel's bundled weights (sha256-checked).
    """
    path = bundled_fcpe_checkpoint() if path is None else Path(path)
    require_checkpoint_file(path, "FCPE", "torchfcpe", INSTALL_HINT)
    payload = read_weights_only(path, "an FCPE checkpoint", ValueError, INSTALL_HINT)
    if not isinstance(payload, dict) or not isinstance(payload.get("model"), dict) or "config_dict" not in payload:
        raise ValueError(f"{path}: expected a torchfcpe checkpoint with 'model' and 'config_dict' entries")
    config = FcpeConfig.from_config_dict(payload["config_dict"], str(path))
    state = {k: v for k, v in payload["model"].items() if k not in _UNUSED_BUFFERS}
    state = fold_state(state, "output_proj.")
    model = FCPE(config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ValueError(f"{path}: weights do not fit the FCPE network of its config: {error}") from error
    return model.eval()
