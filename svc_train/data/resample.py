"""Prepare speaker folders for training: trim, normalise, loudness-match, resample, write 16-bit wav.

Per file, in this order (so-vits-svc's ``resample.py`` with a real loudness match):

1. decode any libsndfile format, any channel count (mixed to mono), any rate; a DC
   offset (mean above ``DC_OFFSET_LIMIT``) is removed with the runtime's zero-phase
   high-pass (noted);
2. trim leading and trailing silence with ``librosa.effects.trim(top_db=40)``;
3. peak-normalise: a peak above full scale is brought to 0.98 (as so-vits-svc);
4. resample to the model rate with soxr (high quality);
5. refuse a clip shorter than ``min_duration_s`` after trimming (``MIN_CLIP_S``, the length
   `svc-train config` keeps): it is reported as skipped, never written into the dataset;
6. loudness-match (unless ``skip_loudnorm``): scale to ``target_lufs`` integrated
   loudness, measured with ITU-R BS.1770-4 K-weighting and gating (pyloudnorm),
   then bring the peak down to ``peak_ceiling`` if the gain pushed it higher. Clips
   shorter than one 400 ms gating block cannot be measured and are peak-normalised
   to ``peak_ceiling`` instead (noted). so-vits-svc itself only peak-normalises here;
7. write 16-bit PCM wav atomically.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import librosa
import numpy as np
import pyloudnorm

from svc_runtime.audio import AudioInputError, decode_audio, remove_dc, resample, write_audio_atomic
from svc_runtime.errors import TrainingDataError
from svc_train.data.config_builder import MIN_CLIP_S

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".opus")
TRIM_TOP_DB = 40.0
PEAK_TARGET = 0.98  # so-vits-svc's normalize_peak scales an over-full-scale peak to this
LOUDNESS_BLOCK_S = 0.4  # BS.1770 gating block
MAX_LOUDNESS_GAIN_DB = 40.0  # more than this only lifts the noise floor; such files are flagged
DC_OFFSET_LIMIT = 1e-3  # a mean beyond this (full scale 1.0) is a DC offset, removed before trimming


@dataclass(frozen=True)
class ResampleSettings:
    """Settings of :func:`prepare_file` (rate in Hz, levels in LUFS / linear full scale)."""

    sampling_rate: int = 44100
    skip_loudnorm: bool = False
    target_lufs: float = -23.0
    peak_ceiling: float = 10 ** (-1.0 / 20)  # -1 dBFS
    top_db: float = TRIM_TOP_DB
    min_duration_s: float = MIN_CLIP_S

    def __post_init__(self) -> None:
        if self.sampling_rate < 8000:
            raise ValueError(f"sampling rate {self.sampling_rate} Hz is too low for a voice model")
        if not -70.0 <= self.target_lufs <= -5.0:
            raise ValueError(f"target loudness {self.target_lufs} LUFS is outside -70..-5 LUFS")
        if not 0.0 < self.peak_ceiling <= 1.0:
            raise ValueError(f"peak ceiling must be in (0, 1], got {self.peak_ceiling}")
        if self.min_duration_s < 0.0:
            raise ValueError(f"minimum clip duration must be >= 0 s, got {self.min_duration_s}")


class ClipTooShortError(TrainingDataError):
    """A clip is shorter than the minimum after trimming silence: not written into the dataset."""


@dataclass
class ResampleResult:
    """What happened to one input file. ``error`` set means it was skipped."""

    source: str
    target: str | None = None
    error: str | None = None
    duration_s: float = 0.0
    loudness_lufs: float | None = None  # measured after resampling, before the gain
    notes: list[str] = field(default_factory=list)


def list_speaker_files(in_dir: Path) -> tuple[dict[str, list[Path]], list[str]]:
    """Audio files per speaker folder (sorted), and problems with the layout (stray files, empty folders)."""
    if not in_dir.is_dir():
        raise FileNotFoundError(f"{in_dir}: input folder does not exist (expected one sub-folder per speaker)")
    speakers: dict[str, list[Path]] = {}
    problems: list[str] = []
    for entry in sorted(in_dir.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file():
            problems.append(f"{entry}: file outside a speaker folder; put it in {in_dir}/<speaker>/")
            continue
        files = sorted(
            p for p in entry.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES and not p.name.startswith(".")
        )
        if not files:
            problems.append(f"{entry}: speaker folder has no audio files ({', '.join(AUDIO_SUFFIXES)})")
            continue
        speakers[entry.name] = files
    return speakers, problems


def target_path(out_dir: Path, speaker: str, source: Path, speaker_dir: Path) -> Path:
    """OUT/<speaker>/<relative path with .wav suffix>; sub-folders are flattened with '_'."""
    relative = source.relative_to(speaker_dir).with_suffix(".wav")
    return out_dir / speaker / "_".join(relative.parts)


def prepare_samples(samples: np.ndarray, sample_rate: int, settings: ResampleSettings) -> tuple[np.ndarray, float | None, list[str]]:
    """Steps 2-5 on mono float32 ``samples`` [N] at ``sample_rate``.

    Returns (samples [M] float32 at ``settings.sampling_rate``, measured loudness or None, notes).
    Raises ValueError for audio that is silent, ClipTooShortError for a clip shorter than
    ``settings.min_duration_s`` once trimmed.
    """
    notes: list[str] = []
    if not np.any(np.abs(samples) > 0):
        raise ValueError("audio is digital silence; nothing to train on")
    offset = float(np.mean(samples, dtype=np.float64))
    if abs(offset) > DC_OFFSET_LIMIT:
        samples = remove_dc(samples, sample_rate)
        notes.append(f"DC offset {offset:+.3f} removed")
    trimmed, _ = librosa.effects.trim(samples, top_db=settings.top_db)
    if trimmed.size == 0:
        raise ValueError("nothing left after trimming silence")
    peak = float(np.max(np.abs(trimmed)))
    if peak > 1.0:
        trimmed = trimmed * (PEAK_TARGET / peak)
    seconds = trimmed.shape[0] / sample_rate
    if seconds < settings.min_duration_s:
        raise ClipTooShortError(
            f"too short: {seconds * 1000:.0f} ms after trimming silence, the minimum is "
            f"{settings.min_duration_s * 1000:.0f} ms; not written (join it to a neighbour or drop it)")
    out = resample(trimmed.astype(np.float32), sample_rate, settings.sampling_rate)
    loudness = None
    if not settings.skip_loudnorm:
        out, loudness = _match_loudness(out, settings, notes)
    return out.astype(np.float32), loudness, notes


def _match_loudness(samples: np.ndarray, settings: ResampleSettings, notes: list[str]) -> tuple[np.ndarray, float | None]:
    sr = settings.sampling_rate
    peak = float(np.max(np.abs(samples)))
    if peak == 0.0:
        raise ValueError("audio is silent after resampling")
    if samples.shape[0] < int(LOUDNESS_BLOCK_S * sr):
        notes.append(f"shorter than {LOUDNESS_BLOCK_S} s: loudness cannot be measured, peak-normalised instead")
        return samples * (settings.peak_ceiling / peak), None
    loudness = float(pyloudnorm.Meter(sr).integrated_loudness(samples.astype(np.float64)))
    if not np.isfinite(loudness):
        notes.append("loudness below the BS.1770 absolute gate (-70 LUFS): peak-normalised instead")
        return samples * (settings.peak_ceiling / peak), None
    gain_db = settings.target_lufs - loudness
    if gain_db > MAX_LOUDNESS_GAIN_DB:
        notes.append(f"very quiet ({loudness:.1f} LUFS): raised by {gain_db:.1f} dB, noise floor included")
    out = samples * (10 ** (gain_db / 20))
    new_peak = peak * 10 ** (gain_db / 20)
    if new_peak > settings.peak_ceiling:
        out = out * (settings.peak_ceiling / new_peak)
        notes.append(
            f"peak limited to {20 * np.log10(settings.peak_ceiling):.1f} dBFS: "
            f"{settings.target_lufs + 20 * np.log10(settings.peak_ceiling / new_peak):.1f} LUFS instead of target"
        )
    return out, loudness


def prepare_file(source: Path, target: Path, settings: ResampleSettings) -> ResampleResult:
    """Decode, prepare and write one file; every failure becomes ``ResampleResult.error`` (never raises)."""
    result = ResampleResult(source=str(source))
    try:
        decoded = decode_audio(source, min_duration_s=0.0, peak_limit=float("inf"))
        result.notes.extend(decoded.notes)
        samples, loudness, notes = prepare_samples(decoded.samples, decoded.sample_rate, settings)
        result.notes.extend(notes)
        result.loudness_lufs = loudness
        write_audio_atomic(target, samples, settings.sampling_rate, fmt="wav", subtype="PCM_16")
        result.target = str(target)
        result.duration_s = samples.shape[0] / settings.sampling_rate
    except AudioInputError as e:
        result.error = e.reason
    except (ValueError, OSError) as e:
        result.error = str(e)
    return result


def default_workers() -> int:
    return max(1, min(8, (os.cpu_count() or 1)))


__all__ = [
    "AUDIO_SUFFIXES",
    "ClipTooShortError",
    "ResampleResult",
    "ResampleSettings",
    "default_workers",
    "list_speaker_files",
    "prepare_file",
    "prepare_samples",
    "target_path",
]
