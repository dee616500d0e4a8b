"""The baseline: the same weights in PyTorch eager, converted the way so-vits-svc 4.1 infers.

As `inference/infer_tool.py` `Svc.slice_inference`: slice the file on silence, and for
each voiced slice pad 0.5 s of zeros on both sides, compute F0 (FCPE) and content units
(HuBERT on 16 kHz audio) for the whole slice, stretch units to the F0 frames
(`repeat_expand_2d`), run `SynthesizerTrn.infer` on the whole slice, cut the padding off,
and concatenate; silent slices become zeros. Modules come from `svc_train` (no export).

Differences from so-vits-svc, all outside the networks: resampling uses soxr (torchaudio
cannot be installed here) and the slice is handed over in memory instead of through an
in-memory wav file. Both pipelines share these numpy helpers, so the comparison is about
how the networks run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import torch

from benchmarks.models import ModelSet
from benchmarks.timing import StageTimer
from svc_runtime.audio.resample import resample
from svc_runtime.pitch.decode import FCPE_POST_RANGE, decode_fcpe
from svc_runtime.signal.f0 import interpolate_unvoiced, nearest_indices, resize_f0
from svc_runtime.signal.slicer import SlicerConfig, slice_on_silence
from svc_runtime.vocabulary import ENCODER_SAMPLE_RATE


@dataclass(frozen=True)
class EagerOptions:
    """so-vits-svc's inference defaults (slice_db -40, pad 0.5 s, noise scale 0.4, whole slices)."""

    slice_db: float = -40.0
    pad_seconds: float = 0.5
    noise_scale: float = 0.4
    seed: int = 52468


class TorchEagerConverter:
    """Loads the generator, the encoder and FCPE as torch modules; `convert_file` times each stage."""

    def __init__(self, models: ModelSet, options: EagerOptions = EagerOptions(), threads: int | None = None):
        from svc_train import load_content_encoder
        from svc_train.checkpoint import load_generator
        from svc_train.config import SvcConfig
        from svc_train.pitch import NeuralPitchExtractor

        if threads:
            torch.set_num_threads(threads)
        self.options = options
        self.config = SvcConfig.load(models.config)
        self.sr = self.config.data.sampling_rate
        self.hop = self.config.hop_length
        self.unit_mode = self.config.data.unit_interpolate_mode
        self.generator = load_generator(models.checkpoint, self.config)
        self.encoder = load_content_encoder(models.encoder_name, models.encoder)
        self.pitch_method = models.pitch
        self.pitch = NeuralPitchExtractor("fcpe") if models.pitch == "fcpe" else None
        self.speaker = torch.tensor([0], dtype=torch.long)

    # --------------------------------------------------------------- one slice
    def _f0(self, audio: np.ndarray, wav16k: np.ndarray, n_frames: int,
            timer: StageTimer) -> tuple[np.ndarray, np.ndarray]:
        with timer.stage("pitch"):
            if self.pitch is not None:  # FCPE (torch network, numpy decoder), as so-vits-svc's FCPEF0Predictor
                salience = self.pitch.salience(wav16k)
                lo, hi = self.pitch.fcpe_f0_range
                f0 = decode_fcpe(salience, self.pitch.decoder, self.pitch.threshold, (lo, hi), FCPE_POST_RANGE)
                f0 = resize_f0(f0.astype(np.float32), n_frames, "nearest")
            else:  # a classic tracker on the model-rate audio (numpy either way)
                from svc_runtime.pitch.extract import FrameGrid, PitchOptions, extract_f0

                track = extract_f0(audio, self.sr, PitchOptions(method=self.pitch_method),
                                   grid=FrameGrid(self.sr, self.hop), n_frames=n_frames)
                f0 = np.asarray(track.f0_hz, np.float32)
            f0, uv = interpolate_unvoiced(f0)
        return f0.astype(np.float32), uv

    def _units(self, wav16k: np.ndarray, n_frames: int, timer: StageTimer) -> torch.Tensor:
        with timer.stage("content"), torch.inference_mode():
            units = self.encoder(torch.from_numpy(wav16k)[None])[0]
            return units[:, torch.from_numpy(nearest_indices(units.shape[1], n_frames))]

    def convert_slice(self, audio: np.ndarray, timer: StageTimer) -> np.ndarray:
        """One padded slice at the model rate -> audio of the same length (the generator's frames)."""
        n_frames = audio.size // self.hop
        with timer.stage("resample"):
            wav16k = resample(audio, self.sr, ENCODER_SAMPLE_RATE)
        f0, uv = self._f0(audio, wav16k, n_frames, timer)
        c = self._units(wav16k, n_frames, timer)
        with timer.stage("generator"), torch.inference_mode():
            out, _ = self.generator.infer(
                c[None], torch.from_numpy(f0)[None], torch.from_numpy(uv)[None], self.speaker,
                noise_scale=self.options.noise_scale,
            )
        return out[0, 0].numpy()

    # --------------------------------------------------------------- one file
    def convert_array(self, samples: np.ndarray, sample_rate: int, timer: StageTimer) -> np.ndarray:
        """Mono float32 at `sample_rate` -> converted audio at the model rate (same duration)."""
        torch.manual_seed(self.options.seed)
        with timer.stage("resample"):
            x = resample(samples, sample_rate, self.sr)
        with timer.stage("slice"):
            segments = slice_on_silence(x, self.sr, SlicerConfig(threshold_db=self.options.slice_db))
        pad = int(self.sr * self.options.pad_seconds)
        pieces = []
        for seg in segments:
            if seg.silent:
                pieces.append(np.zeros(seg.length, np.float32))
                continue
            padded = np.concatenate([np.zeros(pad, np.float32), x[seg.start:seg.end], np.zeros(pad, np.float32)])
            out = self.convert_slice(padded, timer)
            with timer.stage("stitch"):
                body = out[pad:pad + seg.length] if out.size > 2 * pad else out[:0]
                pieces.append(np.pad(body, (0, max(0, seg.length - body.size))))
        with timer.stage("stitch"):
            return np.concatenate(pieces) if pieces else np.zeros(0, np.float32)

    def convert_file(self, source: Path, target: Path, timer: StageTimer) -> float:
        """Decode, convert and write one file; returns its duration in seconds."""
        with timer.stage("decode"):
            data, sr = soundfile.read(source, dtype="float32", always_2d=True)
            samples = data.mean(axis=1)
        audio = self.convert_array(samples, sr, timer)
        with timer.stage("write"):
            soundfile.write(target, np.clip(audio, -1.0, 1.0), self.sr, subtype="PCM_16")
        return samples.size / sr
