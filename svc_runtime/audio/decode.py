"""Decode an audio file (wav, flac, ogg, mp3: whatever libsndfile reads) to a mono float32 signal.

Every way a file can be unusable ends in one `AudioInputError` that names the file and
says what is wrong and what to do, never in a decoder traceback.
"""

from __future__ import annotations

import os
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


def _read_mono(f: soundfile.SoundFile, declared: int, max_frames: int | None = None) -> tuple[np.ndarray, int]:
    """Every frame of an open file mixed to mono, read in blocks -> ([N] float32, non-finite sample count).

    The mono signal is filled in place (sized by the header, grown if the file holds more), so
    the whole multichannel data never exists at once. Each block is mixed by `mix_to_mono`, whose
    per-frame mean does not depend on the block. Reading stops with ValueError past `max_frames`
    (a header that understated the length).
    """
    out = np.empty(min(max(declared, 0), MAX_PREALLOCATED_FRAMES), np.float32)
    extra: list[np.ndarray] = []
    filled = bad = 0
    block_frames = max(4096, READ_BLOCK // max(1, f.channels))
    while True:
        block = f.read(block_frames, dtype="float32", always_2d=True)
        if block.shape[0] == 0:
            break
        if max_frames is not None and filled + sum(e.shape[0] for e in extra) + block.shape[0] > max_frames:
            raise _TooLong()
        bad += int(block.size - np.count_nonzero(np.isfinite(block)))
        mono = mix_to_mono(block)
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
    if not p.exists():
        raise AudioInputError(p, "file does not exist")
    if not p.is_file():
        raise AudioInputError(p, "not a regular file")
    if p.stat().st_size == 0:
        raise AudioInputError(p, "file is empty (0 bytes); nothing to convert")
    try:
        with soundfile.SoundFile(str(p)) as f:
            sample_rate = int(f.samplerate)
            channels = int(f.channels)
            declared = int(f.frames)
            check_header(p, sample_rate, channels, declared, max_duration_s)
            samples, bad = _read_mono(f, declared, int(max_duration_s * sample_rate))
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
    notes: list[str] = []
    if samples.shape[0] == 0:
        raise AudioInputError(p, "contains no audio samples (0 frames); nothing to convert")
    if declared > samples.shape[0] and declared - samples.shape[0] > sample_rate // 100:
        notes.append(
            f"truncated: header declares {declared / sample_rate:.2f} s, "
            f"{samples.shape[0] / sample_rate:.2f} s present; converting what is there"
        )
    if bad:
        raise AudioInputError(
            p,
            f"contains {bad} non-finite samples (NaN or Inf); repair or re-export the file",
        )
    duration = samples.shape[0] / sample_rate
    if duration < min_duration_s:
        raise AudioInputError(
            p,
            f"too short: {duration * 1000:.0f} ms; the minimum is {min_duration_s * 1000:.0f} ms "
            "(a few content-encoder and F0 frames)",
        )
    samples, gain = limit_peak(samples, peak_limit, out=samples)
    if gain < 1.0:
        notes.append(
            f"peak {peak_limit / gain:.2f} above full scale; scaled by {gain:.3f} "
            f"({20 * np.log10(gain):.1f} dB) instead of clipping"
        )
    return DecodedAudio(samples=samples, sample_rate=sample_rate, channels=channels, notes=notes)
