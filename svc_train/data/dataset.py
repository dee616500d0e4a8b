"""Training items from the feature caches, and the batch collation of so-vits-svc 4.1.

An item is one clip: content units aligned to the hop, F0, uv, linear
spectrogram, waveform, speaker id and (with ``vol_embedding``) volume, all on
the same ``T`` frames. As so-vits-svc's ``TextAudioSpeakerLoader``: clips over
800 frames are cut to a random 790-frame window, and volume augmentation
(half of the items, when enabled) scales the waveform by ``10**u`` with ``u``
uniform in ``[-1, min(1, log10(1 / peak))]`` and recomputes the spectrogram.
Randomness comes from a generator seeded by ``(seed, epoch, index)``, so every
process and worker draws the same thing for the same item.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from svc_runtime.signal.units import align_units
from svc_train.config import SvcConfig
from svc_train.data.config_builder import read_filelist
from svc_train.data.features import FeatureError, load_features, read_clip
from svc_train.mel import SpectrogramCache, spectrogram_torch

LONG_CLIP_FRAMES = 800  # so-vits-svc cuts clips longer than this ...
CLIP_WINDOW_FRAMES = 790  # ... to a random window of this many frames


@dataclass
class Item:
    """One clip. c [dim, T], f0/uv/volume [T], spec [F, T], audio [1, T * hop], speaker [1] int64."""

    c: torch.Tensor
    f0: torch.Tensor
    spec: torch.Tensor
    audio: torch.Tensor
    speaker: torch.Tensor
    uv: torch.Tensor
    volume: torch.Tensor | None


class Batch(NamedTuple):
    """Padded batch, longest clip first. c [B, dim, T], f0/uv/volume [B, T], spec [B, F, T],
    audio [B, 1, T * hop], speaker [B, 1], lengths [B] (frames)."""

    c: torch.Tensor
    f0: torch.Tensor
    spec: torch.Tensor
    audio: torch.Tensor
    speaker: torch.Tensor
    lengths: torch.Tensor
    uv: torch.Tensor
    volume: torch.Tensor | None


class SvcDataset(Dataset):
    """Clips of a file list with their cached features; speaker = the clip's parent folder name."""

    def __init__(
        self,
        filelist: str | Path,
        config: SvcConfig,
        all_in_mem: bool = False,
        vol_aug: bool = True,
        min_frames: int = 0,
        seed: int = 1234,
    ) -> None:
        self.config = config
        self.hop = config.data.hop_length
        self.vol_embedding = config.model.vol_embedding
        self.vol_aug = bool(config.train.vol_aug and vol_aug and self.vol_embedding)
        self.seed = seed
        self.epoch = 0
        self.spectrogram_cache = SpectrogramCache()
        self.paths: list[Path] = []
        self.too_short: list[Path] = []
        for path in read_filelist(Path(filelist)):
            speaker = path.parent.name
            if speaker not in config.spk:
                raise ValueError(
                    f"{path}: speaker folder {speaker!r} is not in the config's spk map {dict(config.spk)}; "
                    "re-run `svc-train config`"
                )
            if min_frames:
                features, _ = load_features(path)
                if features.n_frames < min_frames:
                    self.too_short.append(path)
                    continue
            self.paths.append(path)
        if not self.paths:
            raise ValueError(f"{filelist}: no usable clips (need at least {min_frames} frames each)")
        self.cache = [self.load(i) for i in range(len(self.paths))] if all_in_mem else None

    def __len__(self) -> int:
        return len(self.paths)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def load(self, index: int) -> Item:
        """The whole clip, unaugmented."""
        path = self.paths[index]
        features, meta = load_features(path)
        data = self.config.data
        if meta.get("sampling_rate") != data.sampling_rate or meta.get("hop_length") != data.hop_length:
            raise FeatureError(f"{path}: features made for another rate/hop; re-run `svc-train features`")
        if features.units.shape[0] != self.config.model.ssl_dim:
            raise FeatureError(
                f"{path}: units have {features.units.shape[0]} channels, the config's ssl_dim is "
                f"{self.config.model.ssl_dim}; use the matching speech encoder or fix model.ssl_dim"
            )
        audio = read_clip(path, data.sampling_rate)
        t = features.n_frames
        if abs(audio.shape[0] - t * self.hop) >= 3 * self.hop:
            raise FeatureError(f"{path}: audio length does not match its cached features; re-run `svc-train features`")
        units = align_units(features.units, t, data.unit_interpolate_mode)  # type: ignore[arg-type]
        audio = audio[: t * self.hop]
        if audio.shape[0] < t * self.hop:
            audio = np.pad(audio, (0, t * self.hop - audio.shape[0]))
        speaker = self.config.spk[path.parent.name]
        return Item(
            c=torch.from_numpy(np.ascontiguousarray(units, dtype=np.float32)),
            f0=torch.from_numpy(features.f0),
            spec=torch.from_numpy(features.spec),
            audio=torch.from_numpy(np.ascontiguousarray(audio))[None],
            speaker=torch.tensor([speaker], dtype=torch.long),
            uv=torch.from_numpy(features.uv),
            volume=torch.from_numpy(features.volume) if self.vol_embedding else None,
        )

    def __getitem__(self, index: int) -> Item:
        item = self.cache[index] if self.cache is not None else self.load(index)
        rng = random.Random(hash((self.seed, self.epoch, index)))
        return self._augment_and_cut(item, rng)

    def _augment_and_cut(self, item: Item, rng: random.Random) -> Item:
        audio, spec, volume = item.audio, item.spec, item.volume
        if self.vol_aug and volume is not None and rng.choice([True, False]):
            max_amp = float(torch.max(torch.abs(audio))) + 1e-5
            max_shift = min(1.0, float(np.log10(1.0 / max_amp)))
            gain = 10 ** rng.uniform(-1.0, max_shift)
            audio = audio * gain
            volume = volume * gain
            data = self.config.data
            spec = spectrogram_torch(
                audio, data.filter_length, data.sampling_rate, data.hop_length, data.win_length,
                cache=self.spectrogram_cache,
            )[0]
        c, f0, uv = item.c, item.f0, item.uv
        if spec.shape[1] > LONG_CLIP_FRAMES:
            start = rng.randint(0, spec.shape[1] - LONG_CLIP_FRAMES)
            end = start + CLIP_WINDOW_FRAMES
            c, f0, uv, spec = c[:, start:end], f0[start:end], uv[start:end], spec[:, start:end]
            audio = audio[:, start * self.hop : end * self.hop]
            volume = volume[start:end] if volume is not None else None
        return Item(c=c, f0=f0, spec=spec, audio=audio, speaker=item.speaker, uv=uv, volume=volume)


def collate(items: list[Item]) -> Batch:
    """Zero-pad to the longest clip and sort longest first (so-vits-svc's ``TextAudioCollate``)."""
    order = sorted(range(len(items)), key=lambda i: items[i].c.shape[1], reverse=True)
    items = [items[i] for i in order]
    n = len(items)
    max_t = items[0].c.shape[1]
    max_wav = max(it.audio.shape[1] for it in items)
    c = torch.zeros(n, items[0].c.shape[0], max_t)
    f0 = torch.zeros(n, max_t)
    spec = torch.zeros(n, items[0].spec.shape[0], max_t)
    audio = torch.zeros(n, 1, max_wav)
    speaker = torch.zeros(n, 1, dtype=torch.long)
    lengths = torch.zeros(n, dtype=torch.long)
    uv = torch.zeros(n, max_t)
    has_volume = all(it.volume is not None for it in items)
    volume = torch.zeros(n, max_t) if has_volume else None
    for i, it in enumerate(items):
        t = it.c.shape[1]
        c[i, :, :t] = it.c
        f0[i, :t] = it.f0
        spec[i, :, :t] = it.spec
        audio[i, :, : it.audio.shape[1]] = it.audio
        speaker[i, 0] = it.speaker[0]
        lengths[i] = t
        uv[i, :t] = it.uv
        if volume is not None:
            volume[i, :t] = it.volume
    return Batch(c, f0, spec, audio, speaker, lengths, uv, volume)


__all__ = ["Batch", "Item", "SvcDataset", "collate"]
