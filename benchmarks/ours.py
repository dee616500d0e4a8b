"""Our runtime as `svc-run convert` runs it: a bundle on ONNX Runtime through `svc_runtime.pipeline`,
with every stage timed (the bundle's graph runners are wrapped, nothing of theirs is changed)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from benchmarks.timing import StageTimer
from svc_runtime.audio.decode import decode_audio
from svc_runtime.audio.write import write_audio_atomic
from svc_runtime.bundle.bundle import Bundle
from svc_runtime.bundle.sessions import ProviderConfig
from svc_runtime.pipeline.convert import Converter
from svc_runtime.pipeline.options import ConvertOptions

GRAPH_STAGES = {"encode_units": "content", "pitch_salience": "pitch", "run": "graph"}
"""Bundle methods and the stage their time is booked to: `run` is the conversion graph (encoder, pitch
network and generator in one run), `encode_units` / `pitch_salience` the separate graphs the host runs
for retrieval or host F0 (CREPE)."""


@dataclass(frozen=True)
class SessionTuning:
    """ONNX Runtime settings to try (0 / None: the runtime's own default)."""

    intra_op_threads: int = 0

    def label(self) -> str:
        return f"intra={self.intra_op_threads or 'default'}"


@dataclass
class OursConverter:
    """A loaded bundle + `Converter`; `convert_files` decodes, prepares, renders and writes, timed."""

    bundle_dir: Path
    options: ConvertOptions = field(default_factory=ConvertOptions)
    pitch: str = "fcpe"
    tuning: SessionTuning = field(default_factory=SessionTuning)
    precision: str = "fp32"

    def __post_init__(self) -> None:
        provider = ProviderConfig(provider="cpu", intra_op_threads=self.tuning.intra_op_threads)
        self.bundle = Bundle.load(self.bundle_dir, provider=provider, precision=self.precision)
        if self.pitch != "fcpe" and self.options.f0_method is None:  # no pitch graph: the classic tracker
            self.options = replace(self.options, f0_method=self.pitch)
        self.converter = Converter(self.bundle, self.options)
        self.sr = self.converter.sr
        self._timer: StageTimer | None = None
        for method, stage in GRAPH_STAGES.items():
            original = getattr(self.bundle, method)
            setattr(self.bundle, method, self._booked(stage, original))

    def _booked(self, stage: str, fn):
        def timed(*args, **kwargs):
            if self._timer is None:
                return fn(*args, **kwargs)
            with self._timer.stage(stage):
                return fn(*args, **kwargs)

        return timed

    def convert_files(self, sources: list[Path], targets: list[Path], timer: StageTimer) -> float:
        """Convert `sources` together (generator chunks batched across them); returns audio seconds.

        Stages: decode, prepare (resample, slicing, 16 kHz copies, host F0; graph time is booked to
        pitch/content), pitch, content, graph (the conversion graph), stitch (render minus graph: the host's
        per-window work: cutting, noise, feeds, crossfade), write.
        """
        self._timer = timer
        try:
            prepared, seconds = [], 0.0
            for source in sources:
                with timer.stage("decode"):
                    decoded = decode_audio(source)
                seconds += decoded.samples.size / decoded.sample_rate
                before = _graph_seconds(timer, ("pitch", "content"))
                with timer.stage("prepare"):
                    prepared.append(self.converter.prepare(decoded))
                del decoded  # as svc-run convert: the decoded input is not held while rendering
                timer.seconds["prepare"] -= _graph_seconds(timer, ("pitch", "content")) - before
            before = _graph_seconds(timer, ("graph", "content", "pitch"))
            with timer.stage("stitch"):
                outputs = self.converter.render(prepared)
            timer.seconds["stitch"] -= _graph_seconds(timer, ("graph", "content", "pitch")) - before
            with timer.stage("write"):
                for target, audio in zip(targets, outputs):
                    write_audio_atomic(target, audio, self.sr)
            return seconds
        finally:
            self._timer = None

    def convert_file(self, source: Path, target: Path, timer: StageTimer) -> float:
        return self.convert_files([source], [target], timer)

    def convert_array(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        return self.converter.convert(samples, sample_rate)


def _graph_seconds(timer: StageTimer, stages: tuple[str, ...]) -> float:
    return sum(timer.seconds.get(s, 0.0) for s in stages)
