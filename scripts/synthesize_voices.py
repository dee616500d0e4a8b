"""Synthesise a tiny multi-speaker dataset and a test phrase for the quickstart (no downloads).

Each "speaker" is a harmonic source with its own pitch range and spectral tilt, sung on a
slow melody with vibrato; the result is not a voice, only audio with a known pitch that
exercises every stage of the pipeline.

    python scripts/synthesize_voices.py OUT_DIR
writes OUT_DIR/raw/<speaker>/*.wav (44.1 kHz) and OUT_DIR/phrase.wav.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import soundfile

SAMPLE_RATE = 44100
SPEAKERS = {"alto": (220.0, 1.0), "bass": (110.0, 0.6), "tenor": (165.0, 1.4)}
"""name -> (base F0 in Hz, spectral tilt exponent of the harmonics)."""


def sing(base_hz: float, tilt: float, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A phrase of four notes around base_hz with vibrato: float32 [seconds*SAMPLE_RATE]."""
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    notes = base_hz * 2 ** (rng.choice([0, 2, 4, 5, 7, 9], size=4) / 12)
    f0 = np.repeat(notes, -(-n // 4))[:n] * 2 ** (0.3 / 12 * np.sin(2 * np.pi * 5.5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    harmonics = sum(np.sin(h * phase) / h**tilt for h in range(1, 20) if h * f0.max() < 16000)
    envelope = np.clip(np.minimum(t, t[-1] - t) * 8, 0, 1)
    audio = 0.25 * harmonics * envelope / np.abs(harmonics).max() + 0.001 * rng.standard_normal(n)
    return audio.astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--clips", type=int, default=6, help="clips per speaker")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    for name, (base, tilt) in SPEAKERS.items():
        folder = args.out_dir / "raw" / name
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(args.clips):
            soundfile.write(folder / f"{name}_{k:02d}.wav", sing(base, tilt, 2.5, rng), SAMPLE_RATE)
    silence = np.zeros(SAMPLE_RATE // 2, dtype=np.float32)
    phrase = np.concatenate([sing(196.0, 1.0, 3.0, rng), silence, sing(246.9, 1.0, 2.0, rng)])
    soundfile.write(args.out_dir / "phrase.wav", phrase, SAMPLE_RATE)


if __name__ == "__main__":
    main()
