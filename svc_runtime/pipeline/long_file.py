"""Long files in bounded memory: decode -> convert -> encode in blocks, the output the same as `Converter`'s.

`Converter.prepare` holds a whole file (decoded, at the model rate, at 16 kHz, and its output), which
grows with the input's length. Here a file is read twice, block by block, and never held:

1. `plan_long_file` decodes it once with `decode_audio`'s checks (`AudioScanner`), brings it to the model
   rate in a stream (`resample_blocks`, `remove_dc_blocks`: the same samples as the whole-array forms)
   and keeps only what needs the whole file: the slicer's RMS frames (-> the voiced slices) and, for the
   loudness mix, the source's RMS envelope. A file whose peak must be scaled down is read once more.
2. `convert_long_file` decodes it again into a sliding buffer. Each voiced slice runs its windows in
   order with the `Converter`'s own steps (`new_slice`, windows, `place` = `stitch`, phase carry); its
   padded audio and its 16 kHz copy are sliding buffers too, and every output sample that no later window
   touches is mixed (loudness) and written to the atomic output file at once.

What is held: a window's audio at both rates plus a block, the pending output of one window, per-frame
arrays (F0, RMS frames: a few bytes per 10-20 ms), and the graph's run. Files longer than
`LONG_FILE_SECONDS` take this path in batches (`BatchRunner`); the result equals converting the whole
file in memory sample for sample (tests/test_long_file.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from svc_runtime.audio.decode import MAX_DURATION_S, AudioScan, AudioScanner, mono_blocks
from svc_runtime.audio.dsp import remove_dc_blocks
from svc_runtime.audio.resample import resample_blocks, resampled_length
from svc_runtime.audio.write import AudioWriter
from svc_runtime.pipeline.convert import Converter, SliceWork, release_free_heap
from svc_runtime.pipeline.window import samples_at
from svc_runtime.signal.f0 import NoVoiceError
from svc_runtime.signal.slicer import Segment, SlicerGrid, segments_from_rms
from svc_runtime.signal.volume import FrameRms, linear_resize_sources, rms_mix_gain
from svc_runtime.vocabulary import ENCODER_SAMPLE_RATE

LONG_FILE_SECONDS = 60.0
"""Inputs longer than this (from the header) are converted in blocks; shorter ones are held whole and can
share graph runs with other files."""
BLOCK = 1 << 16
"""Samples moved per step between the sliding buffers."""


class SlidingSignal:
    """A signal produced in order by `source` (an iterator of float32 blocks), read by slices `[a:b]`.

    Reading fetches blocks until `b` is covered (the slice is cut short only where the signal ends);
    `drop(before)` forgets the samples before `before`, which must not be read again.
    """

    def __init__(self, source: Iterator[np.ndarray], length: int) -> None:
        self._source = source
        self._buf = np.zeros(0, np.float32)
        self._start = 0
        self.shape = (length,)

    @property
    def end(self) -> int:
        """The sample after the last one fetched."""
        return self._start + self._buf.shape[0]

    def __getitem__(self, key: slice) -> np.ndarray:
        a, b = key.start or 0, self.shape[0] if key.stop is None else key.stop
        if a < self._start:
            raise AssertionError(f"sliding signal: samples from {a} were dropped (kept from {self._start})")
        if b > self.end:
            parts = [self._buf]
            have = self.end
            for blk in self._source:
                parts.append(blk)
                have += blk.shape[0]
                if have >= b:
                    break
            self._buf = np.concatenate(parts)
        return self._buf[a - self._start : b - self._start]

    def blocks(self, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
        """Samples [start, stop) as copies of at most BLOCK samples, fetched as the consumer asks."""
        stop = self.shape[0] if stop is None else stop
        for a in range(start, stop, BLOCK):
            yield self[a : min(a + BLOCK, stop)].copy()

    def drop(self, before: int) -> None:
        """Forget samples before `before`; past the fetched end, the source is read and discarded up to it."""
        while before > self.end:
            blk = next(self._source, None)
            if blk is None:
                break
            self._start, self._buf = self.end, blk
        cut = min(max(before - self._start, 0), self._buf.shape[0])
        if cut:
            self._buf = self._buf[cut:].copy()
            self._start += cut


class ReflectRms:
    """`rms_frames(x, 2 * half, hop)` of a stream (reflect padding of `half` samples each side, as
    so-vits-svc's `change_rms`): the head reflection waits for the first half + 1 samples, the tail
    reflection is fed from the last half + 1 kept at the end."""

    def __init__(self, half: int, hop: int) -> None:
        self.half = half
        self.frames = FrameRms(2 * half, hop, 0)
        self._head = np.zeros(0, np.float32)
        self._tail = np.zeros(0, np.float32)
        self._started = False

    def feed(self, block: np.ndarray) -> None:
        if not self._started:
            self._head = np.concatenate([self._head, block])
            if self._head.shape[0] <= self.half:
                return
            self.frames.feed(self._head[self.half : 0 : -1])
            block, self._head, self._started = self._head, np.zeros(0, np.float32), True
        self.frames.feed(block)
        self._tail = np.concatenate([self._tail, block])[-(self.half + 1) :]

    def ready(self) -> np.ndarray:
        return self.frames.ready()

    def finish(self) -> np.ndarray:
        if not self._started:
            raise ValueError(f"a loudness envelope needs more than {self.half} samples")
        self.frames.feed(self._tail[-2 : -self.half - 2 : -1])
        return self.frames.finish()


def loudness_frames(sr: int) -> ReflectRms:
    """The envelope `change_rms` takes at `sr`: half-second hops, one-second frames."""
    return ReflectRms(sr // 2, sr // 2)


def model_rate_blocks(blocks: Iterator[np.ndarray], in_rate: int, converter: Converter) -> Iterator[np.ndarray]:
    """Decoded mono blocks -> the signal `Converter.prepare` converts: at the model rate, DC removed."""
    x = resample_blocks(blocks, in_rate, converter.sr)
    return remove_dc_blocks(x, converter.sr) if converter.options.remove_dc else x


@dataclass
class LongFilePlan:
    """What the first pass found: the scan, the output length (model rate), the voiced slices and, with a
    loudness mix, the source's envelope frames."""

    scan: AudioScan
    n_out: int
    slices: list[Segment]
    source_rms: np.ndarray | None
    notes: list[str] = field(default_factory=list)


def plan_long_file(converter: Converter, path: str | Path, max_duration_s: float = MAX_DURATION_S) -> LongFilePlan:
    """The first pass over `path` (module docstring); AudioInputError etc. exactly as `decode_audio`."""
    scanner = AudioScanner(path, max_duration_s=max_duration_s)
    found = _analyse(converter, scanner.blocks(), scanner)
    scan = scanner.result
    if scan.gain < 1.0:  # the peak is scaled down before anything else: analyse the scaled samples
        found = _analyse(converter, mono_blocks(scan), scanner)
    n, rms, source_rms = found
    n_out = resampled_length(scan.n_samples, scan.header.sample_rate, converter.sr)
    if n != n_out:
        raise AssertionError(f"model-rate stream gave {n} samples for {n_out}")
    grid = SlicerGrid.at(converter.sr, converter.options.slicer)
    slices = [s for s in segments_from_rms(rms, n, grid) if not s.silent and s.length > 0]
    return LongFilePlan(scan=scan, n_out=n_out, slices=slices, source_rms=source_rms, notes=list(scan.notes))


def _analyse(converter: Converter, blocks: Iterator[np.ndarray], scanner) -> tuple[int, np.ndarray, np.ndarray | None]:
    """(model-rate length, slicer RMS frames, loudness frames or None) of decoded mono `blocks`."""
    grid = SlicerGrid.at(converter.sr, converter.options.slicer)
    slicer_rms = FrameRms(grid.window, grid.hop, grid.window // 2)
    loudness = loudness_frames(converter.sr) if converter.options.loudness_mix < 1.0 else None
    n = 0
    for blk in model_rate_blocks(blocks, scanner.sample_rate, converter):
        n += blk.shape[0]
        slicer_rms.feed(blk)
        if loudness is not None:
            loudness.feed(blk)
    return n, slicer_rms.finish(), None if loudness is None else loudness.finish()


class _OutputStream:
    """The output from sample `base` on: pending samples that windows still add to, then (once final) the
    loudness mix and the writer. Silence between slices is written as zeros without being held."""

    def __init__(self, writer: AudioWriter, n_out: int, sr: int, rate: float, source_rms: np.ndarray | None) -> None:
        self.writer, self.n_out = writer, n_out
        self.base = 0
        self.pending = np.zeros(0, np.float32)
        self.rate = rate
        self.source_rms = source_rms
        self.out_rms = loudness_frames(sr) if rate < 1.0 else None
        self._unmixed = np.zeros(0, np.float32)  # final samples waiting for their envelope (loudness mix)
        self._mixed = 0  # samples mixed and written so far
        if self.out_rms is not None:
            self._n_frames = (source_rms.shape[0], 1 + n_out // (sr // 2))

    def cover(self, stop: int) -> np.ndarray:
        """`pending`, grown with zeros to reach file sample `stop`."""
        stop = min(stop, self.n_out)
        if stop > self.base + self.pending.shape[0]:
            grow = stop - self.base - self.pending.shape[0]
            self.pending = np.concatenate([self.pending, np.zeros(grow, np.float32)])
        return self.pending

    def finalise(self, before: int) -> None:
        """Samples before file sample `before` are final: pass them on (zeros where nothing was added)."""
        before = min(before, self.n_out)
        while self.base < before:
            take = min(before - self.base, max(BLOCK, self.pending.shape[0]))
            block = self.pending[:take]
            if block.shape[0] < take:
                block = np.concatenate([block, np.zeros(take - block.shape[0], np.float32)])
            self.pending = self.pending[take:]
            self.base += take
            self._emit(block)

    def _emit(self, block: np.ndarray) -> None:
        if not np.all(np.isfinite(block)):
            raise FloatingPointError("the generator produced non-finite samples")
        if self.out_rms is None:
            self.writer.write(block)
            return
        self.out_rms.feed(block)
        self._unmixed = np.concatenate([self._unmixed, block])
        self._mix(self.out_rms.ready())

    def _mix(self, out_frames: np.ndarray) -> None:
        """Mix and write the unmixed samples whose envelope values are known."""
        n = self._unmixed.shape[0]
        if n == 0:
            return
        _, needed, _ = linear_resize_sources(self._n_frames[1], self.n_out, self._mixed, self._mixed + n)
        k = int(np.searchsorted(needed, out_frames.shape[0]))  # the last frame each sample reads; non-decreasing
        if k == 0:
            return
        gain = rms_mix_gain(self.source_rms, out_frames, self.n_out, self.rate, self._mixed, self._mixed + k,
                            self._n_frames)
        mixed = self._unmixed[:k] * gain
        if not np.all(np.isfinite(mixed)):
            raise FloatingPointError("the generator produced non-finite samples")
        self.writer.write(mixed)
        self._unmixed = self._unmixed[k:]
        self._mixed += k

    def close(self) -> None:
        self.finalise(self.n_out)
        if self.out_rms is not None:
            self._mix(self.out_rms.finish())
            if self._unmixed.shape[0]:
                raise AssertionError(f"{self._unmixed.shape[0]} output samples left without a loudness envelope")


def convert_long_file(converter: Converter, plan: LongFilePlan, target: str | Path, fmt: str = "wav",
                      progress: Callable[[float], None] | None = None) -> float:
    """The second pass: convert the file of `plan` into `target` (atomic; nothing is left on failure).

    progress: called after each window with the fraction of the file whose output is written.
    Returns the output's duration in seconds. Raises what `Converter.render_each` gives for a file
    (FloatingPointError, NoVoiceError) and the writer's OutputWriteError / DiskFullError.
    """
    c, scan = converter, plan.scan
    signal = SlidingSignal(model_rate_blocks(mono_blocks(scan), scan.header.sample_rate, c), plan.n_out)
    voiced = 0
    with AudioWriter(target, c.sr, fmt) as writer:
        out = _OutputStream(writer, plan.n_out, c.sr, c.options.loudness_mix, plan.source_rms)
        for stream, piece in enumerate(plan.slices):
            seg = _open_slice(c, signal, piece, stream)
            voiced += _run_slice(c, seg, out, plan.n_out, progress)
            signal.drop(piece.end)
        out.close()
        if c.options.f0_filter and voiced == 0:
            raise NoVoiceError("no voiced frame found (f0 filter is on): the pitch tracker heard no voice")
    return plan.n_out / c.sr


def _open_slice(c: Converter, signal: SlidingSignal, piece: Segment, stream: int) -> SliceWork:
    """A slice whose padded audio and 16 kHz copy are sliding buffers fed from the file's signal."""
    pad, n = c.slice_layout(piece.start, piece.end)
    length = piece.end - piece.start

    def padded() -> Iterator[np.ndarray]:
        yield np.zeros(pad, np.float32)
        for a in range(piece.start, piece.end, BLOCK):
            b = min(a + BLOCK, piece.end)
            yield signal[a:b].copy()
            signal.drop(b)
        yield np.zeros(n * c.hop - pad - length, np.float32)

    audio = SlidingSignal(padded(), n * c.hop)
    wav16k = SlidingSignal(resample_blocks(audio.blocks(), c.sr, ENCODER_SAMPLE_RATE),
                           resampled_length(n * c.hop, c.sr, ENCODER_SAMPLE_RATE))
    return c.new_slice(piece.start, piece.end, stream, audio, wav16k)


def _run_slice(c: Converter, seg: SliceWork, out: _OutputStream, n_out: int,
               progress: Callable[[float], None] | None) -> int:
    """Run `seg`'s windows in order into `out`; returns its voiced frame count."""
    out.finalise(seg.start)
    voiced = 0
    for ch in seg.chunks:
        window = c.window_for(seg, ch, n_out)
        result = c.run_batch([(seg, window)])[0]
        buf = out.cover(seg.start - seg.pad + ch.win_end * c.hop)
        c.place(buf, seg, ch, result.audio, origin=out.base, n_out=n_out)
        if seg.f0 is None:
            voiced += int(result.uv.sum())
        seg.phase = result.phase_out
        seg.done += 1
        out.finalise(c.final_before(seg, n_out))
        if progress is not None:
            progress(out.base / n_out)
        if seg.done < len(seg.chunks):
            nxt = seg.chunks[seg.done].win_start
            seg.audio.drop(nxt * c.hop)  # F0 chunks still to fill start later still
            seg.wav16k.drop(samples_at(nxt, c.hop, c.sr))
        release_free_heap()
    voiced += seg.voiced
    seg.release()
    return voiced
