"""Benchmark inputs: corpus speech and sung files concatenated to the lengths needed.

With `/work/shared/corpus` (or SVC_BENCH_CORPUS) present, inputs alternate speech and
sung files in a fixed order until the length is reached; without it (a fresh clone,
the smoke test) a synthetic voiced signal with pauses stands in, and the result says so.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from svc_runtime.audio.resample import resample

SAMPLE_RATE = 44100
DEFAULT_CORPUS = Path("/work/shared/corpus")


@dataclass(frozen=True)
class BenchInput:
    """One input file written for a benchmark run."""

    path: Path
    seconds: float
    source: str


def corpus_root() -> Path | None:
    root = Path(os.environ.get("SVC_BENCH_CORPUS", DEFAULT_CORPUS))
    return root if (root / "speech").is_dir() and (root / "sung").is_dir() else None


def corpus_files(root: Path) -> list[Path]:
    """Speech and sung wavs interleaved (speech, sung, speech, ...), in sorted order."""
    speech = sorted((root / "speech").glob("*/*.wav"))
    sung = sorted((root / "sung").glob("*.wav"))
    out: list[Path] = []
    for i in range(max(len(speech), len(sung))):
        if i < len(speech):
            out.append(speech[i])
        if i < len(sung):
            out.append(sung[i])
    return out


def synthetic_voice(seconds: float, sample_rate: int = SAMPLE_RATE, seed: int = 0) -> np.ndarray:
    """A harmonic tone with a gliding F0 and vibrato, 2 s phrases separated by 0.5 s pauses."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sample_rate))
    t = np.arange(n) / sample_rate
    f0 = 160.0 * 2 ** (0.5 * np.sin(2 * np.pi * t / 3.0)) * (1 + 0.01 * np.sin(2 * np.pi * 5.5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    tone = sum(np.sin(k * phase) / k for k in range(1, 8)) * 0.15
    gate = ((t % 2.5) < 2.0).astype(np.float64)
    ramp = np.convolve(gate, np.hanning(441) / np.hanning(441).sum(), mode="same")
    return (tone * ramp + 1e-4 * rng.standard_normal(n)).astype(np.float32)


def concatenated(seconds: float, offset: int = 0) -> tuple[np.ndarray, str]:
    """[round(seconds * 44100)] float32 mono at 44.1 kHz, and where it came from."""
    n = int(round(seconds * SAMPLE_RATE))
    root = corpus_root()
    if root is None:
        return synthetic_voice(seconds), "synthetic (corpus not found)"
    files = corpus_files(root)
    parts: list[np.ndarray] = []
    have = 0
    i = offset
    while have < n:
        data, sr = soundfile.read(files[i % len(files)], dtype="float32", always_2d=True)
        mono = data.mean(axis=1)
        if sr != SAMPLE_RATE:
            mono = resample(mono, sr, SAMPLE_RATE)
        parts.append(mono)
        have += mono.size
        i += 1
    return np.concatenate(parts)[:n], f"corpus speech+sung ({i - offset} files from #{offset})"


def write_input(folder: Path, seconds: float, offset: int = 0) -> BenchInput:
    """Write a `seconds`-long input wav (16-bit PCM, as the corpus) into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    audio, source = concatenated(seconds, offset)
    label = f"{seconds:g}".replace(".", "p")
    path = folder / f"input_{label}s_{offset}.wav"
    soundfile.write(path, audio, SAMPLE_RATE, subtype="PCM_16")
    return BenchInput(path, audio.size / SAMPLE_RATE, source)


def file_set(folder: Path, count: int, seconds: float) -> list[BenchInput]:
    """`count` different inputs of about `seconds` each (for batch scaling)."""
    return [write_input(folder, seconds, offset=3 * i) for i in range(count)]


def n_frames(seconds: float, hop: int = 512) -> int:
    return int(math.ceil(seconds * SAMPLE_RATE / hop))
