"""RMVPE pitch network (so-vits-svc's ``E2E0``): log-mel -> pitch salience.

Module and attribute names follow the reference exactly, so an ``rmvpe.pt``
state dict loads strictly. Every size is read from the weights; only the
pooling kernel / transposed-conv stride (2, 2), fixed in every published RMVPE,
is not stored in a checkpoint.

Shapes: ``mel [B, n_mels, T]`` (natural log), ``salience [B, T, n_classes]`` in
(0, 1); bins are 20 cents apart (see ``svc_runtime.pitch.decode``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from svc_train.pitch.mel import RMVPE_MEL, LogMelSpectrogram, MelConfig
from svc_train.safe_pickle import read_weights_only

POOL = (2, 2)
FRAME_MULTIPLE = 32  # 2 ** en_de_layers for the 5-level U-Net; the reference pads to 32

CHECKPOINT_HINT = (
    "RMVPE needs its weights file `rmvpe.pt` (so-vits-svc: `pretrain/rmvpe.pt`; the RVC file "
    "works too). Download it yourself and pass its path with `--checkpoint /path/to/rmvpe.pt`."
)


@dataclass(frozen=True)
class RmvpeConfig:
    """Network sizes, as read from a state dict."""

    in_channels: int = 1
    en_out_channels: int = 16
    en_de_layers: int = 5
    inter_layers: int = 4
    n_blocks: int = 4
    n_gru: int = 1
    gru_hidden: int = 256
    n_mels: int = 128
    n_classes: int = 360

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> "RmvpeConfig":
        first = "unet.encoder.layers.0.conv.0.conv.0.weight"
        if first not in state:
            raise ValueError(f"not an RMVPE state dict: key {first!r} is missing")

        def count(prefix: str) -> int:
            n = 0
            while any(k.startswith(f"{prefix}{n}.") for k in state):
                n += 1
            return n

        en_out, in_channels = state[first].shape[:2]
        n_gru = 0
        while f"fc.0.gru.weight_ih_l{n_gru}" in state:
            n_gru += 1
        if n_gru:
            gru_in = state["fc.0.gru.weight_ih_l0"].shape[1]
            gru_hidden = state["fc.0.gru.weight_hh_l0"].shape[1]
            n_classes = state["fc.1.weight"].shape[0]
        else:
            gru_in = state["fc.0.weight"].shape[1]
            gru_hidden = 0
            n_classes = state["fc.0.weight"].shape[0]
        cnn_out = state["cnn.weight"].shape[0]
        return cls(
            in_channels=int(in_channels),
            en_out_channels=int(en_out),
            en_de_layers=count("unet.encoder.layers."),
            inter_layers=count("unet.intermediate.layers."),
            n_blocks=count("unet.encoder.layers.0.conv."),
            n_gru=n_gru,
            gru_hidden=int(gru_hidden),
            n_mels=int(gru_in) // int(cnn_out),
            n_classes=int(n_classes),
        )


class ConvBlockRes(nn.Module):
    """Two 3x3 conv + BN + ReLU with a residual (1x1 conv when widths differ)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
        )
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.shortcut is None else self.shortcut(x)
        return self.conv(x) + residual


class ResEncoderBlock(nn.Module):
    """``n_blocks`` residual conv blocks, optionally followed by 2x2 average pooling."""

    def __init__(self, in_channels: int, out_channels: int, n_blocks: int, pool: bool) -> None:
        super().__init__()
        blocks = [ConvBlockRes(in_channels, out_channels)]
        blocks += [ConvBlockRes(out_channels, out_channels) for _ in range(n_blocks - 1)]
        self.conv = nn.ModuleList(blocks)
        self.pool = nn.AvgPool2d(POOL) if pool else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.conv:
            x = block(x)
        return x


class ResDecoderBlock(nn.Module):
    """2x transposed-conv upsampling, concatenation with the skip, residual blocks."""

    def __init__(self, in_channels: int, out_channels: int, n_blocks: int) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(
            nn.ConvTranspose2d(in_channels, out_channels, 3, stride=POOL, padding=1,
                               output_padding=(1, 1), bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
        )
        blocks = [ConvBlockRes(out_channels * 2, out_channels)]
        blocks += [ConvBlockRes(out_channels, out_channels) for _ in range(n_blocks - 1)]
        self.conv2 = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = torch.cat((self.conv1(x), skip), dim=1)
        for block in self.conv2:
            x = block(x)
        return x


class Encoder(nn.Module):
    def __init__(self, config: RmvpeConfig) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(config.in_channels)
        channels_in, channels_out = config.in_channels, config.en_out_channels
        layers = []
        self.skip_channels: list[int] = []
        for _ in range(config.en_de_layers):
            layers.append(ResEncoderBlock(channels_in, channels_out, config.n_blocks, pool=True))
            self.skip_channels.append(channels_out)
            channels_in, channels_out = channels_out, channels_out * 2
        self.layers = nn.ModuleList(layers)
        self.out_channels = channels_out  # twice the deepest encoder width

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips = []
        x = self.bn(x)
        for layer in self.layers:
            skip = layer(x)
            skips.append(skip)
            x = layer.pool(skip)
        return x, skips


class Intermediate(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, n_layers: int, n_blocks: int) -> None:
        super().__init__()
        layers = [ResEncoderBlock(in_channels, out_channels, n_blocks, pool=False)]
        layers += [ResEncoderBlock(out_channels, out_channels, n_blocks, pool=False) for _ in range(n_layers - 1)]
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class TimbreFilter(nn.Module):
    """Present in every RMVPE checkpoint but unused by E2E0's forward (kept so keys load strictly)."""

    def __init__(self, skip_channels: list[int]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(ConvBlockRes(c, c) for c in skip_channels)


class Decoder(nn.Module):
    def __init__(self, in_channels: int, n_layers: int, n_blocks: int) -> None:
        super().__init__()
        layers = []
        for _ in range(n_layers):
            layers.append(ResDecoderBlock(in_channels, in_channels // 2, n_blocks))
            in_channels //= 2
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        for layer, skip in zip(self.layers, reversed(skips)):
            x = layer(x, skip)
        return x


class DeepUnet(nn.Module):
    def __init__(self, config: RmvpeConfig) -> None:
        super().__init__()
        self.encoder = Encoder(config)
        self.intermediate = Intermediate(
            self.encoder.out_channels // 2, self.encoder.out_channels, config.inter_layers, config.n_blocks
        )
        self.tf = TimbreFilter(self.encoder.skip_channels)
        self.decoder = Decoder(self.encoder.out_channels, config.en_de_layers, config.n_blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, skips = self.encoder(x)
        return self.decoder(self.intermediate(x), skips)


class BiGRU(nn.Module):
    def __init__(self, input_size: int, hidden_size: int, num_layers: int) -> None:
        super().__init__()
        self.gru = nn.GRU(input_size, hidden_size, num_layers=num_layers, batch_first=True, bidirectional=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gru(x)[0]


class RMVPE(nn.Module):
    """E2E0: ``forward(mel [B, n_mels, T]) -> salience [B, T, n_classes]``.

    The mel is right-padded with zeros to a multiple of 32 frames inside the
    graph and the salience cropped back to T, so any T >= 1 works and the
    traced graph keeps T dynamic.
    """

    def __init__(self, config: RmvpeConfig) -> None:
        super().__init__()
        self.config = config
        self.unet = DeepUnet(config)
        self.cnn = nn.Conv2d(config.en_out_channels, 3, 3, padding=1)
        features = 3 * config.n_mels
        if config.n_gru:
            self.fc = nn.Sequential(
                BiGRU(features, config.gru_hidden, config.n_gru),
                nn.Linear(2 * config.gru_hidden, config.n_classes),
                nn.Dropout(0.25),
                nn.Sigmoid(),
            )
        else:
            self.fc = nn.Sequential(nn.Linear(features, config.n_classes), nn.Dropout(0.25), nn.Sigmoid())

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        n_frames = mel.shape[-1]
        padded_frames = (n_frames + FRAME_MULTIPLE - 1) // FRAME_MULTIPLE * FRAME_MULTIPLE
        mel = nn.functional.pad(mel, (0, FRAME_MULTIPLE - 1))[..., :padded_frames]
        x = mel.transpose(-1, -2).unsqueeze(1)  # [B, 1, T32, n_mels]
        x = self.cnn(self.unet(x)).transpose(1, 2).flatten(-2)  # [B, T32, 3 * n_mels]
        return self.fc(x)[:, :n_frames]


class RmvpeFromAudio(nn.Module):
    """Mel front end + RMVPE: ``forward(audio [B, N] 16 kHz) -> salience [B, N // 160 + 1, 360]``."""

    def __init__(self, network: RMVPE, mel: MelConfig = RMVPE_MEL) -> None:
        super().__init__()
        self.mel = LogMelSpectrogram(mel)
        self.network = network

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.network(self.mel(audio))


def read_rmvpe_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read an ``rmvpe.pt`` state dict: ``{'model': state_dict}`` (so-vits-svc) or plain (RVC)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"RMVPE checkpoint not found: {path}. {CHECKPOINT_HINT}")
    payload = read_weights_only(path, "an RMVPE checkpoint", ValueError, CHECKPOINT_HINT)
    if isinstance(payload, dict) and isinstance(payload.get("model"), dict):
        payload = payload["model"]
    if not isinstance(payload, dict) or not all(isinstance(v, torch.Tensor) for v in payload.values()):
        raise ValueError(f"{path}: expected an RMVPE state dict (or {{'model': state_dict}}). {CHECKPOINT_HINT}")
    return payload


def load_rmvpe(path: str | Path) -> RMVPE:
    """Build RMVPE with the sizes found in ``path`` and load it strictly; eval mode."""
    state = read_rmvpe_state_dict(path)
    try:
        config = RmvpeConfig.from_state_dict(state)
        model = RMVPE(config)
        model.load_state_dict(state, strict=True)
    except (ValueError, KeyError, RuntimeError) as error:
        raise ValueError(f"{path}: not a loadable RMVPE checkpoint: {error}") from error
    return model.eval()
