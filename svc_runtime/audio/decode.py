"""Decode an audio file (wav, flac, ogg, mp3: whatever libsndfile reads) to a mono float32 signal.

Every way a file can be unusable ends in one `AudioInputError` that names the file and
says what is wrong and what to do, never in a decoder traceback.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile

from svc_runtime.audio.dsp import limit_peak
from svc_runtime.errors import InputAudioError, OutOfMemoryError, short_cause

MIN_DURATION_S = 0.1
"""Shortest input the pipeline accepts: a few content-encoder frames (20 ms each) and F0 frames."""
MAX_DURATION_S = 3 * 3600.0
"""Default longest input (seconds), checked from the header before decoding."""
MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 384000
"""Input sample rates accepted (Hz): telephone audio up to 384 kHz studio files."""
MAX_CHANNELS = 256

SUPPORTED = "WAV, FLAC, OGG/Vorbis, MP3 and other formats libsndfile reads"

AudioInputError = InputAudioError
"""The name this module has always raised; one class with `svc_runtime.errors.InputAudioError`."""


@dataclass
class DecodedAudio:
    """A decoded input. samples: [N] float32 mono; sample_rate: Hz of `samples`."""

    samples: np.ndarray
    sample_rate: int
    channels: int
    notes: list[str] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return self.samples.shape[0] / self.sample_rate


def mix_to_mono(samples: np.ndarray) -> np.ndarray:
    """[N] or [N, C] -> [N] float32, the mean of the channels."""
    if samples.ndim == 1:
        return samples.astype(np.float32, copy=False)
    if samples.shape[1] == 1:
        return np.ascontiguousarray(samples[:, 0], dtype=np.float32)
    return samples.mean(axis=1, dtype=np.float64).astype(np.float32)


READ_BLOCK = 1 << 18
"""Frames decoded per step: only one block of all channels is held next to the mono signal."""
MAX_PREALLOCATED_FRAMES = 1 << 32
"""Cap on the header's frame count trusted for preallocation (a lying header cannot ask for more)."""


def check_header(path: str | os.PathLike, sample_rate: int, channels: int, frames: int,
                 max_duration_s: float = MAX_DURATION_S) -> None:
    """Refuse, before decoding, a header whose rate, channel count or implied duration is out of range."""
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise AudioInputError(
            path, f"sample rate {sample_rate} Hz in the header is outside {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz; "
            "the header is damaged or the file must be resampled first")
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioInputError(path, f"{channels} channels in the header (at most {MAX_CHANNELS}); "
                                    "the header is damaged or the file must be mixed down first")
    if frames > 0 and frames / sample_rate > max_duration_s:
        raise AudioInputError(
            path, f"too long: the header declares {frames / sample_rate / 60:.1f} min, the limit is "
            f"{max_duration_s / 60:.1f} min; split the file or raise the duration limit")


def _mono_blocks(f: soundfile.SoundFile, max_frames: int | None = None) -> Iterator[tuple[np.ndarray, int]]:
    """An open file mixed to mono block by block -> ([n] float32, non-finite sample count) per block.

    Each block is mixed by `mix_to_mono`, whose per-frame mean does not depend on the block, so any
    reader of these blocks sees the same samples. Stops with `_TooLong` past `max_frames` (a header
    that understated the length).
    """
    seen = 0
    block_frames = max(4096, READ_BLOCK // max(1, f.channels))
    while True:
        block = f.read(block_frames, dtype="float32", always_2d=True)
        if block.shape[0] == 0:
            return
        seen += block.shape[0]
        if max_frames is not None and seen > max_frames:
            raise _TooLong()
        yield mix_to_mono(block), int(block.size - np.count_nonzero(np.isfinite(block)))


def _read_mono(f: soundfile.SoundFile, declared: int, max_frames: int | None = None) -> tuple[np.ndarray, int]:
    """Every frame of an open file mixed to mono (`_mono_blocks`) -> ([N] float32, non-finite sample count).

    The mono signal is filled in place (sized by the header, grown if the file holds more), so
    the whole multichannel data never exists at once.
    """
    out = np.empty(min(max(declared, 0), MAX_PREALLOCATED_FRAMES), np.float32)
    extra: list[np.ndarray] = []
    filled = bad = 0
    for mono, block_bad in _mono_blocks(f, max_frames):
        bad += block_bad
        take = min(mono.shape[0], out.shape[0] - filled)
        out[filled : filled + take] = mono[:take]
        filled += take
        if take < mono.shape[0]:
            extra.append(mono[take:].copy())
    if extra:
        return np.concatenate([out[:filled], *extra]), bad
    if filled < out.shape[0]:
        out = out[:filled].copy()
    return out, bad


class _TooLong(Exception):
    """The decoded signal passed the duration limit (the header did not say so)."""


@dataclass(frozen=True)
class AudioHeader:
    """What a file's header says: sample rate (Hz), channels and declared frames (may lie)."""

    sample_rate: int
    channels: int
    frames: int

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate


def _check_file(p: Path) -> None:
    if not p.exists():
        raise AudioInputError(p, "file does not exist")
    if not p.is_file():
        raise AudioInputError(p, "not a regular file")
    if p.stat().st_size == 0:
        raise AudioInputError(p, "file is empty (0 bytes); nothing to convert")


@contextlib.contextmanager
def _opened(path: str | os.PathLike, max_duration_s: float) -> Iterator[tuple[soundfile.SoundFile, AudioHeader]]:
    """Open `path` for decoding with its header checked; every decoder failure inside the block becomes
    one AudioInputError (OutOfMemoryError when the samples do not fit)."""
    p = Path(path)
    _check_file(p)
    try:
        with soundfile.SoundFile(str(p)) as f:
            header = AudioHeader(int(f.samplerate), int(f.channels), int(f.frames))
            check_header(p, header.sample_rate, header.channels, header.frames, max_duration_s)
            yield f, header
    except _TooLong:
        raise AudioInputError(p, f"too long: more than the limit of {max_duration_s / 60:.1f} min; split the file "
                                 "or raise the duration limit") from None
    except MemoryError as e:
        raise OutOfMemoryError("decoding", short_cause(e) if str(e) else "the samples do not fit") from None
    except soundfile.LibsndfileError as e:
        detail = str(e).split(":")[-1].strip() or "unknown decoder error"
        raise AudioInputError(
            p, f"not a readable audio file ({detail}); supported: {SUPPORTED}"
        ) from None
    except (RuntimeError, OSError, ValueError) as e:
        raise AudioInputError(p, f"could not be decoded ({e}); supported: {SUPPORTED}") from None


def read_header(path: str | os.PathLike, max_duration_s: float = MAX_DURATION_S) -> AudioHeader:
    """The checked header of `path` (AudioInputError for a missing, unreadable or out-of-range file)."""
    with _opened(path, max_duration_s) as (_, header):
        return header


def _decoded_notes(p: Path, header: AudioHeader, n: int, bad: int, min_duration_s: float) -> list[str]:
    """Check a fully decoded signal of `n` samples (`bad` non-finite) -> notes; AudioInputError when unusable."""
    if n == 0:
        raise AudioInputError(p, "contains no audio samples (0 frames); nothing to convert")
    notes: list[str] = []
    sample_rate = header.sample_rate
    if header.frames > n and header.frames - n > sample_rate // 100:
        notes.append(
            f"truncated: header declares {header.frames / sample_rate:.2f} s, "
            f"{n / sample_rate:.2f} s present; converting what is there"
        )
    if bad:
        raise AudioInputError(
            p,
            f"contains {bad} non-finite samples (NaN or Inf); repair or re-export the file",
        )
    duration = n / sample_rate
    if duration < min_duration_s:
        raise AudioInputError(
            p,
            f"too short: {duration * 1000:.0f} ms; the minimum is {min_duration_s * 1000:.0f} ms "
            "(a few content-encoder and F0 frames)",
        )
    return notes


def _peak_note(peak_limit: float, gain: float) -> str:
    return (f"peak {peak_limit / gain:.2f} above full scale; scaled by {gain:.3f} "
            f"({20 * np.log10(gain):.1f} dB) instead of clipping")


def decode_audio(
    path: str | os.PathLike,
    min_duration_s: float = MIN_DURATION_S,
    peak_limit: float = 1.0,
    max_duration_s: float = MAX_DURATION_S,
) -> DecodedAudio:
    """Read `path`, mix to mono, check it, and bring peaks above `peak_limit` down (noted).

    Raises AudioInputError for a missing, empty, unreadable, non-finite, too-short or too-long
    file, or one whose header claims a sample rate outside 8..384 kHz (checked before decoding);
    OutOfMemoryError when its samples do not fit in memory.
    """
    p = Path(path)
    with _opened(p, max_duration_s) as (f, header):
        samples, bad = _read_mono(f, header.frames, int(max_duration_s * header.sample_rate))
    notes = _decoded_notes(p, header, samples.shape[0], bad, min_duration_s)
    samples, gain = limit_peak(samples, peak_limit, out=samples)
    if gain < 1.0:
        notes.append(_peak_note(peak_limit, gain))
    return DecodedAudio(samples=samples, sample_rate=header.sample_rate, channels=header.channels, notes=notes)


@dataclass
class AudioScan:
    """One decoding pass over a file without keeping its samples: the checked header, the mono length,
    the peak gain (1.0, or what brings the peak down to the limit) and the notes `decode_audio` would give."""

    path: Path
    header: AudioHeader
    n_samples: int
    gain: float
    notes: list[str]


class AudioScanner:
    """One decoding pass over a file that keeps nothing: `blocks()` yields its mono float32 blocks (before
    any peak gain) with `decode_audio`'s checks, then `result` holds the `AudioScan`. Memory: one block."""

    def __init__(self, path: str | os.PathLike, min_duration_s: float = MIN_DURATION_S, peak_limit: float = 1.0,
                 max_duration_s: float = MAX_DURATION_S) -> None:
        self.path = Path(path)
        self.min_duration_s, self.peak_limit, self.max_duration_s = min_duration_s, peak_limit, max_duration_s
        self.header = read_header(self.path, max_duration_s)
        self.sample_rate = self.header.sample_rate
        self.result: AudioScan | None = None

    def blocks(self) -> Iterator[np.ndarray]:
        n = bad = 0
        peak = 0.0
        with _opened(self.path, self.max_duration_s) as (f, header):
            for mono, block_bad in _mono_blocks(f, int(self.max_duration_s * header.sample_rate)):
                n += mono.shape[0]
                bad += block_bad
                if not block_bad and mono.size:
                    peak = max(peak, float(mono.max()), float(-mono.min()))
                yield mono
        notes = _decoded_notes(self.path, header, n, bad, self.min_duration_s)
        gain = 1.0 if peak <= self.peak_limit else self.peak_limit / peak
        if gain < 1.0:
            notes.append(_peak_note(self.peak_limit, gain))
        self.result = AudioScan(path=self.path, header=header, n_samples=n, gain=gain, notes=notes)


def mono_blocks(scan: AudioScan) -> Iterator[np.ndarray]:
    """The file of `scan` decoded again, mono, with its peak gain applied: the same samples `decode_audio`
    returns, as float32 blocks (one block held at a time)."""
    with _opened(scan.path, MAX_PREALLOCATED_FRAMES / scan.header.sample_rate) as (f, _):
        for mono, _ in _mono_blocks(f):
            if scan.gain < 1.0:
                np.multiply(mono, scan.gain, out=mono)
            yield mono
