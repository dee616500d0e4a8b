"""Per-file training features, cached next to the audio.

For ``clip.wav`` the cache is ``clip.wav.features.npz``: an uncompressed numpy
archive (``np.load(..., allow_pickle=False)`` reads it; nothing in it is a pickle)
holding

========== ================= =====================================================
key        shape / dtype     meaning
========== ================= =====================================================
``units``  [dim, U] float32  speech-encoder output at its own rate (~50 frames/s),
                             as so-vits-svc's ``.soft.pt``; aligned to the hop at
                             load time with ``unit_interpolate_mode``
``f0``     [T] float32       F0 in Hz with unvoiced frames interpolated, T = N // hop
``uv``     [T] float32       1.0 where the pitch method found voicing
``volume`` [T] float32       frame RMS (so-vits-svc ``Volume_Extractor``)
``spec``   [F, T] float32    linear magnitude spectrogram, F = filter_length // 2 + 1
``meta``   0-d str           JSON: ``format``, ``version``, the settings that made it
                             (rate, hop, FFT sizes, encoder, pitch method) and the
                             source wav's size and mtime
========== ================= =====================================================

A cache is valid when it loads, its ``meta`` matches the current settings and
source file, and its arrays have the shapes above; anything else is recomputed.
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
import torch

from svc_runtime.atomic import atomic_output
from svc_runtime.audio import resample
from svc_runtime.errors import TrainingDataError
from svc_runtime.pitch.extract import FrameGrid, PitchOptions, extract_f0
from svc_runtime.pitch.methods import NEURAL_METHODS
from svc_runtime.signal.f0 import interpolate_unvoiced
from svc_runtime.signal.volume import volume_envelope
from svc_runtime.vocabulary import ENCODER_SAMPLE_RATE, F0_MAX_HZ, F0_MIN_HZ
from svc_train.config import SvcConfig
from svc_train.mel import SpectrogramCache, spectrogram_torch

FEATURE_SUFFIX = ".features.npz"
FORMAT = "svc-train-features"
VERSION = 1
SILENCE_PEAK = 10 ** (-80 / 20)  # a clip whose peak stays below -80 dBFS is silent


class FeatureError(ValueError):
    """A file cannot give training features (silent, too short, wrong rate, ...): excluded, not fatal."""


class FeatureConfigError(TrainingDataError):
    """The config and the loaded networks disagree (units width vs ssl_dim): nothing can be extracted."""


@dataclass(frozen=True)
class FeatureSettings:
    """Everything that determines a file's features (all of it is recorded in ``meta``)."""

    sampling_rate: int
    hop_length: int
    filter_length: int
    win_length: int
    speech_encoder: str
    encoder_checkpoint: str
    f0_method: str
    f0_checkpoint: str | None = None
    f0_threshold: float | None = None
    f0_min: float = F0_MIN_HZ
    f0_max: float = F0_MAX_HZ

    @classmethod
    def from_config(cls, config: SvcConfig, encoder_checkpoint: Path, f0_method: str, **pitch: Any) -> FeatureSettings:
        data = config.data
        return cls(
            sampling_rate=data.sampling_rate,
            hop_length=data.hop_length,
            filter_length=data.filter_length,
            win_length=data.win_length,
            speech_encoder=config.model.speech_encoder,
            encoder_checkpoint=str(Path(encoder_checkpoint).resolve()),
            f0_method=f0_method,
            **pitch,
        )

    def pitch_options(self) -> PitchOptions:
        checkpoint = Path(self.f0_checkpoint) if self.f0_checkpoint else None
        # "length" alignment: so-vits-svc's predictors stretch the method's frames to N // hop by count.
        return PitchOptions(self.f0_method, checkpoint, self.f0_threshold, self.f0_min, self.f0_max, alignment="length")


@dataclass
class FileFeatures:
    """Arrays of one clip; see the module docstring for shapes."""

    units: np.ndarray
    f0: np.ndarray
    uv: np.ndarray
    volume: np.ndarray
    spec: np.ndarray

    @property
    def n_frames(self) -> int:
        return int(self.f0.shape[0])


def feature_path(wav_path: Path) -> Path:
    return Path(f"{wav_path}{FEATURE_SUFFIX}")


def read_clip(wav_path: Path, sampling_rate: int) -> np.ndarray:
    """Mono float32 [N] of a prepared clip; FeatureError when it is not at ``sampling_rate`` or not mono."""
    try:
        audio, sr = soundfile.read(str(wav_path), dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError) as e:
        raise FeatureError(f"unreadable audio ({e})") from None
    if sr != sampling_rate:
        raise FeatureError(f"sample rate {sr} Hz, the config wants {sampling_rate} Hz; run `svc-train resample` first")
    if audio.shape[1] != 1:
        raise FeatureError(f"{audio.shape[1]} channels; run `svc-train resample` first (it writes mono)")
    return audio[:, 0]


def source_stamp(wav_path: Path) -> dict[str, int]:
    stat = wav_path.stat()
    return {"source_bytes": int(stat.st_size), "source_mtime_ns": int(stat.st_mtime_ns)}


class FeatureExtractor:
    """Loaded speech encoder and pitch network; ``extract(samples)`` computes one clip's features."""

    def __init__(self, settings: FeatureSettings, device: str | torch.device = "cpu") -> None:
        from svc_train import load_content_encoder

        self.settings = settings
        self.device = torch.device(device)
        self.encoder = load_content_encoder(settings.speech_encoder, settings.encoder_checkpoint).to(self.device)
        self.pitch_options = settings.pitch_options()
        self.pitch_estimator = None  # the torch network of a neural method, loaded once
        if settings.f0_method in NEURAL_METHODS:
            from svc_train.pitch.extract import NeuralPitchExtractor

            self.pitch_estimator = NeuralPitchExtractor(
                settings.f0_method, self.pitch_options.checkpoint, self.pitch_options.threshold, device=self.device
            )
        self.spectrogram_cache = SpectrogramCache()
        self.min_encoder_samples = int(getattr(self.encoder, "min_samples", 400))

    @functools.cached_property
    def units_dim(self) -> int:
        """Width of the units the loaded encoder gives (one run on a second of silence at 16 kHz)."""
        with torch.inference_mode():
            silence = torch.zeros(1, ENCODER_SAMPLE_RATE, device=self.device)
            return int(self.encoder(silence).shape[1])

    def check_config(self, config: SvcConfig, config_path: Path | str) -> None:
        """FeatureConfigError (one line, with the fix) when the encoder's units are not `model.ssl_dim` wide."""
        if self.units_dim != config.model.ssl_dim:
            raise FeatureConfigError(
                f"{config_path}: model.ssl_dim is {config.model.ssl_dim} but the {self.settings.speech_encoder} "
                f"checkpoint {self.settings.encoder_checkpoint} gives {self.units_dim}-wide units",
                f"use the encoder the config was made for, or rerun `svc-train config ... --encoder-checkpoint "
                f"{self.settings.encoder_checkpoint}` (it reads the width)")

    def raw_f0(self, samples: np.ndarray, n_frames: int) -> np.ndarray:
        """Raw F0 [n_frames] Hz on the (sampling_rate, hop) grid, 0 = unvoiced."""
        s = self.settings
        grid = FrameGrid(s.sampling_rate, s.hop_length)
        return extract_f0(samples, s.sampling_rate, self.pitch_options, grid, n_frames, self.pitch_estimator).f0_hz

    def extract(self, samples: np.ndarray) -> FileFeatures:
        s = self.settings
        if samples.size == 0 or float(np.max(np.abs(samples))) < SILENCE_PEAK:
            raise FeatureError("silent (peak below -80 dBFS)")
        n_frames = samples.shape[0] // s.hop_length
        wav16k = resample(samples, s.sampling_rate, ENCODER_SAMPLE_RATE)
        if n_frames < 2 or wav16k.shape[0] < self.min_encoder_samples:
            raise FeatureError(f"too short ({samples.shape[0] / s.sampling_rate:.3f} s) for the speech encoder")
        with torch.inference_mode():
            units = self.encoder(torch.from_numpy(wav16k)[None].to(self.device))[0].float().cpu().numpy()
        raw = self.raw_f0(samples, n_frames)
        f0, uv = interpolate_unvoiced(raw)
        if not np.any(uv > 0):
            raise FeatureError(f"no voiced frame found by the {s.f0_method} pitch method")
        volume = volume_envelope(samples, s.hop_length)
        with torch.inference_mode():
            spec = spectrogram_torch(
                torch.from_numpy(samples)[None],
                s.filter_length,
                s.sampling_rate,
                s.hop_length,
                s.win_length,
                center=False,
                cache=self.spectrogram_cache,
            )[0].numpy()
        return FileFeatures(
            units=np.ascontiguousarray(units, dtype=np.float32),
            f0=f0.astype(np.float32),
            uv=uv.astype(np.float32),
            volume=volume.astype(np.float32),
            spec=np.ascontiguousarray(spec, dtype=np.float32),
        )


def _meta(settings: FeatureSettings, wav_path: Path, units_dim: int) -> dict[str, Any]:
    return {"format": FORMAT, "version": VERSION, **asdict(settings), **source_stamp(wav_path), "units_dim": units_dim}


def save_features(wav_path: Path, features: FileFeatures, settings: FeatureSettings) -> Path:
    """Write the cache atomically (temporary file in the same folder, then rename)."""
    target = feature_path(wav_path)
    meta = json.dumps(_meta(settings, wav_path, int(features.units.shape[0])))
    with atomic_output(target) as handle:
        np.savez(
            handle,
            units=features.units,
            f0=features.f0,
            uv=features.uv,
            volume=features.volume,
            spec=features.spec,
            meta=np.array(meta),
        )
    return target


def load_features(wav_path: Path) -> tuple[FileFeatures, dict[str, Any]]:
    """Read a cache; FeatureError (naming the file) if it is missing, unreadable or inconsistent."""
    path = feature_path(wav_path)
    if not path.is_file():
        raise FeatureError(f"{path}: no cached features; run `svc-train features -c CONFIG` first")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in ("units", "f0", "uv", "volume", "spec", "meta")}
    except (OSError, ValueError, KeyError, EOFError) as e:
        raise FeatureError(f"{path}: unreadable feature cache ({e}); delete it and run `svc-train features`") from None
    try:
        meta = json.loads(str(arrays.pop("meta")))
    except json.JSONDecodeError as e:
        raise FeatureError(f"{path}: broken metadata ({e})") from None
    features = FileFeatures(**arrays)
    t = features.n_frames
    shapes_ok = (
        features.units.ndim == 2
        and features.f0.shape == features.uv.shape == features.volume.shape == (t,)
        and features.spec.ndim == 2
        and features.spec.shape[1] == t
    )
    if meta.get("format") != FORMAT or not shapes_ok:
        raise FeatureError(f"{path}: not a valid {FORMAT} cache; delete it and run `svc-train features`")
    return features, meta


def cache_problem(wav_path: Path, settings: FeatureSettings) -> str | None:
    """None when ``wav_path`` has a valid cache for ``settings``; else why it must be (re)computed."""
    try:
        _, meta = load_features(wav_path)
    except FeatureError as e:
        return str(e)
    if meta.get("version") != VERSION:
        return f"cache version {meta.get('version')} (current {VERSION})"
    for key, value in asdict(settings).items():
        if meta.get(key) != value:
            return f"made with {key}={meta.get(key)!r}, now {value!r}"
    if any(meta.get(k) != v for k, v in source_stamp(wav_path).items()):
        return "the audio changed since the cache was made"
    return None


__all__ = [
    "FEATURE_SUFFIX",
    "FeatureConfigError",
    "FeatureError",
    "FeatureExtractor",
    "FeatureSettings",
    "FileFeatures",
    "cache_problem",
    "feature_path",
    "load_features",
    "read_clip",
    "save_features",
]
