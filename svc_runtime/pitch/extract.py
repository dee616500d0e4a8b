"""One F0 entry point for the CLI and the conversion pipeline: ``extract_f0``.

* classic methods (``harvest``, ``dio``, ``pm``) run directly (numpy + pyworld / parselmouth);
* neural methods (``rmvpe``, ``fcpe``, ``crepe``) run an ONNX graph exported by ``svc-export``
  (``checkpoint`` ending in ``.onnx``: 16 kHz audio ``[1, N]`` -> salience ``[1, N // 160 + 1, 360]``)
  decoded by :class:`svc_runtime.pitch.decode.SalienceDecoder`, or, given a torch checkpoint or
  none, the same network on the torch side: a backend registered under the entry-point group
  ``svc_toolkit.pitch_estimators`` (the ``train`` extra's ``torch``), so the runtime names no
  torch package and stays torch-free.

The result is raw F0 (0 = unvoiced, no interpolation) on a frame grid: frame ``i`` at
``i * hop / sample_rate`` s. Use :func:`svc_runtime.signal.f0.interpolate_unvoiced` for the
generator's ``(f0, uv)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Literal, Protocol

import numpy as np

from svc_runtime.audio.resample import resample, resampled_length
from svc_runtime.errors import SvcError
from svc_runtime.pitch.classic import ClassicRange, classic_f0, pm
from svc_runtime.pitch.decode import SalienceDecoder
from svc_runtime.pitch.methods import NEURAL_METHODS, PITCH_METHODS, pitch_method
from svc_runtime.signal.f0 import f0_at_times, resize_f0
from svc_runtime.vocabulary import F0_MAX_HZ, F0_MIN_HZ, PITCH_HOP, PITCH_SAMPLE_RATE

if TYPE_CHECKING:
    from svc_runtime.bundle.sessions import ProviderConfig

Alignment = Literal["time", "length"]

ESTIMATOR_ENTRY_POINTS = "svc_toolkit.pitch_estimators"
"""Entry-point group of pitch-network backends other than ONNX: ``name = "module:factory"``, where
``factory(options: PitchOptions) -> PitchEstimator``. The ``train`` extra registers ``torch``."""
TRAIN_EXTRA_HINT = 'install the training extra: pip install "svc-toolkit[train]"'


class PitchExtractionError(SvcError, RuntimeError):
    """F0 extraction could not run (missing backend, unreadable graph); the message says what to do."""


@dataclass(frozen=True)
class FrameGrid:
    """A frame grid: frame ``i`` at ``i * hop / sample_rate`` s."""

    sample_rate: int
    hop: int

    def __post_init__(self) -> None:
        if self.sample_rate <= 0 or self.hop <= 0:
            raise ValueError(f"frame grid needs a positive sample rate and hop, got {self.sample_rate} / {self.hop}")

    @property
    def period_s(self) -> float:
        return self.hop / self.sample_rate

    def times(self, n_frames: int) -> np.ndarray:
        """[n_frames] float64 seconds."""
        return np.arange(n_frames, dtype=np.float64) * self.hop / self.sample_rate

    def frames_for(self, n_samples: int, sample_rate: int) -> int:
        """so-vits-svc's ``p_len``: frames of audio of ``n_samples`` at ``sample_rate`` once at this rate."""
        return resampled_length(n_samples, sample_rate, self.sample_rate) // self.hop


NATIVE_GRID = FrameGrid(PITCH_SAMPLE_RATE, PITCH_HOP)
"""Every method's own grid here: 10 ms (the networks' 16 kHz / 160; Harvest/DIO frame_period 10 ms)."""


@dataclass(frozen=True)
class PitchOptions:
    """How to extract F0.

    ``threshold``: voicing threshold; None = the method's default (rmvpe/fcpe salience 0.05,
    so-vits-svc's ``cr_threshold``; pm Praat voicing 0.6); Harvest and DIO have none.
    ``f0_min`` / ``f0_max``: search range of the classic methods (Hz).
    ``alignment``: ``time`` places frames by time (nearest source frame; Harvest/DIO run on
    the target grid directly); ``length`` reproduces so-vits-svc's predictors, which stretch
    the method's frames to ``n_frames`` by count (nearest for networks, linear for pyworld,
    centred zero padding for pm).
    """

    method: str
    checkpoint: Path | None = None
    threshold: float | None = None
    f0_min: float = F0_MIN_HZ
    f0_max: float = F0_MAX_HZ
    alignment: Alignment = "time"

    def __post_init__(self) -> None:
        spec = pitch_method(self.method)
        ClassicRange(self.f0_min, self.f0_max)  # validates the range
        if self.threshold is not None:
            if spec.threshold is None:
                raise ValueError(f"{self.method} has no voicing threshold; drop --threshold")
            if not 0.0 <= self.threshold < 1.0:
                raise ValueError(f"{self.method}: threshold must be in [0, 1), got {self.threshold}")
        if self.checkpoint is not None:
            if self.method not in NEURAL_METHODS:
                raise ValueError(f"{self.method} takes no checkpoint; only {', '.join(NEURAL_METHODS)} do")
            if not Path(self.checkpoint).is_file():
                raise FileNotFoundError(f"{self.method} checkpoint not found: {self.checkpoint}")
        if self.alignment not in ("time", "length"):
            raise ValueError(f"alignment must be 'time' or 'length', got {self.alignment!r}")

    @property
    def effective_threshold(self) -> float | None:
        return pitch_method(self.method).threshold if self.threshold is None else self.threshold

    @property
    def uses_onnx(self) -> bool:
        return self.checkpoint is not None and Path(self.checkpoint).suffix.lower() == ".onnx"


@dataclass
class F0Track:
    """Raw F0 on a grid. ``f0_hz``: [T] float32, 0 = unvoiced; ``times_s``: [T] float64."""

    f0_hz: np.ndarray
    times_s: np.ndarray
    grid: FrameGrid
    method: str


CREPE_FRAMES_PER_RUN = 256
"""CREPE frames per graph run: frames are independent, and the full model holds about 1 MB of
activations per frame, so long audio runs in slices instead of all at once."""
CREPE_HALF_WINDOW = 512  # CREPE frame i covers samples i * 160 - 512 .. i * 160 + 511 (zero outside)


def crepe_segments(wav16k: np.ndarray, frames_per_run: int) -> Iterator[tuple[np.ndarray, slice]]:
    """Cut 16 kHz audio for CREPE graph runs: ``(segment, keep)`` pairs, in frame order.

    The graph's frames ``keep`` of ``segment`` are the next ``frames_per_run`` (or fewer) of
    the ``N // 160 + 1`` frames of the whole audio, with exactly the same samples: a segment
    starts ``lead = 4`` hops before its first frame and ends 512 samples after its last frame
    centre, zero beyond the audio.
    """
    if frames_per_run <= 0:
        raise ValueError(f"frames_per_run must be positive, got {frames_per_run}")
    audio = np.asarray(wav16k, dtype=np.float32)
    hop = PITCH_HOP
    lead = -(-CREPE_HALF_WINDOW // hop)
    padded = np.pad(audio, (lead * hop, CREPE_HALF_WINDOW))  # padded[p + lead * hop] = audio[p]
    n_frames = audio.size // hop + 1
    for start in range(0, n_frames, frames_per_run):
        stop = min(start + frames_per_run, n_frames)
        yield padded[start * hop : (stop - 1 + lead) * hop + CREPE_HALF_WINDOW], slice(lead, lead + stop - start)


class OnnxPitchEstimator:
    """An exported mel+network pitch graph run on a CPU backend and decoded in numpy.

    Graph contract (``svc-export``): one float32 input ``[B, N]`` of 16 kHz audio, first
    output the salience ``[B, N // 160 + 1, 360]``. FCPE's bin range may be given in the
    model metadata (``f0_min`` / ``f0_max``, read by ONNX Runtime); torchfcpe's 32.7-1975.5 Hz otherwise.
    ``provider``: the backend (`ProviderConfig`: ONNX Runtime by default, or OpenVINO), always fp32: in
    bf16 a pitch network's F0 moves by about 1 Hz. ``threads``: intra-op threads when no provider is given.
    """

    def __init__(
        self, path: str | Path, method: str, provider: ProviderConfig | None = None, threads: int | None = None
    ) -> None:
        if method not in NEURAL_METHODS:
            raise ValueError(f"an ONNX pitch graph must be one of {NEURAL_METHODS}, got {method!r}")
        from svc_runtime.bundle.sessions import (  # deferred: fast --help
            ProviderConfig,
            ProviderUnavailableError,
            open_session,
        )

        self.path = Path(path)
        self.method = method
        self.crepe_frames_per_run = CREPE_FRAMES_PER_RUN
        config = provider or ProviderConfig(intra_op_threads=threads)
        if config.inference_precision != "fp32":
            raise ValueError(f"{method}: pitch graphs run in fp32 (in bf16 their F0 moves by ~1 Hz)")
        try:
            self.session = open_session(f"pitch ({method})", self.path, config)
        except ProviderUnavailableError:
            raise
        except Exception as error:  # the backends raise their own exception types for bad files
            raise PitchExtractionError(
                f"{self.path}: cannot load as an ONNX pitch graph ({error}); export one with svc-export"
            ) from error
        ort_session = getattr(self.session, "ort_session", None)  # OpenVINO exposes no ONNX metadata
        names = self.session.input_names
        rank = None
        if len(names) == 1:
            rank = len(ort_session.get_inputs()[0].shape) if ort_session is not None else self.session.input_rank(names[0])
        if rank != 2:
            raise PitchExtractionError(f"{self.path}: expected one audio input [batch, samples], got {list(names)}"
                                       f"{'' if rank is None else f' of rank {rank}'}")
        self.input_name = names[0]
        self.output_name = self.session.output_names[0]
        meta = ort_session.get_modelmeta().custom_metadata_map if ort_session is not None else {}
        self.fcpe_f0_range = (float(meta["f0_min"]), float(meta["f0_max"])) if "f0_min" in meta and "f0_max" in meta else None

    def salience(self, wav16k: np.ndarray) -> np.ndarray:
        """``wav16k [N]`` -> salience [T, bins] float32 (CREPE: in runs of ``crepe_frames_per_run`` frames)."""
        if self.method == "crepe":
            parts = [self._run(segment)[keep] for segment, keep in crepe_segments(wav16k, self.crepe_frames_per_run)]
            return np.concatenate(parts)
        return self._run(wav16k)

    def _run(self, wav16k: np.ndarray) -> np.ndarray:
        audio = np.ascontiguousarray(wav16k, dtype=np.float32)[None]
        salience = self.session.run({self.input_name: audio})[self.output_name]
        if salience.ndim != 3 or salience.shape[0] != 1:
            raise PitchExtractionError(f"{self.path}: expected salience [1, frames, bins], got {salience.shape}")
        return salience[0]

    def __call__(self, wav16k: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        """``wav16k [N]`` -> ``(times_s [T], f0_hz [T])`` at 10 ms, raw."""
        decode = SalienceDecoder(self.method, threshold, bins_range=self.fcpe_f0_range)
        f0 = decode(self.salience(wav16k), wav16k)
        return NATIVE_GRID.times(f0.shape[0]), f0


class PitchEstimator(Protocol):
    """A loaded pitch network: ``(wav16k [N], threshold) -> (times_s [T], f0_hz [T])`` on `NATIVE_GRID`, raw."""

    def __call__(self, wav16k: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]: ...


def load_pitch_estimator(
    options: PitchOptions, threads: int | None = None, provider: ProviderConfig | None = None
) -> PitchEstimator:
    """Load the network of a neural method once: the ONNX graph for ``*.onnx``, else the torch backend.

    ``threads``: ONNX Runtime intra-op threads (None: its default); torch's are process-wide.
    ``provider``: the ONNX graph's backend (`OnnxPitchEstimator`); the torch backend ignores it.
    The torch backend is found through the ``svc_toolkit.pitch_estimators`` entry points;
    without it (the runtime installed alone) this raises `PitchExtractionError` saying what to do.
    """
    pitch_method(options.method, neural=True)
    if options.uses_onnx:
        return OnnxPitchEstimator(options.checkpoint, options.method, provider, threads)  # type: ignore[arg-type]
    found = {entry.name: entry for entry in metadata.entry_points(group=ESTIMATOR_ENTRY_POINTS)}
    needs = (
        f"{options.method} without an ONNX graph runs the network on the PyTorch side. Either pass "
        "--checkpoint MODEL.onnx (a pitch graph exported by svc-export) or " + TRAIN_EXTRA_HINT
    )
    if "torch" not in found:
        raise PitchExtractionError(f"{needs} (no '{ESTIMATOR_ENTRY_POINTS}' backend is installed).")
    try:
        factory = found["torch"].load()
    except ImportError as error:
        raise PitchExtractionError(f"{needs} ({error.name or error} is missing).") from error
    return factory(options)


def neural_f0(
    options: PitchOptions, audio: np.ndarray, sample_rate: int, estimator: PitchEstimator | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """RMVPE / FCPE / CREPE on their 10 ms grid: ``(times_s [T], f0_hz [T])``, T = N16k // 160 + 1."""
    wav16k = resample(np.asarray(audio, dtype=np.float32), sample_rate, PITCH_SAMPLE_RATE)
    threshold = options.effective_threshold
    assert threshold is not None
    if estimator is None:
        estimator = load_pitch_estimator(options)
    return estimator(wav16k, threshold)


def _centred_fit(f0: np.ndarray, n_frames: int) -> np.ndarray:
    """so-vits-svc's PM padding: zero-pad ``(n - T + 1) // 2`` frames in front and the rest behind."""
    front = (n_frames - f0.size + 1) // 2
    back = n_frames - f0.size - front
    if front > 0 or back > 0:
        f0 = np.pad(f0, (max(front, 0), max(back, 0)))
    return f0[:n_frames] if f0.size >= n_frames else np.pad(f0, (0, n_frames - f0.size))


def extract_f0(
    audio: np.ndarray,
    sample_rate: int,
    options: PitchOptions,
    grid: FrameGrid | None = None,
    n_frames: int | None = None,
    estimator: PitchEstimator | None = None,
) -> F0Track:
    """Raw F0 of mono ``audio [N]`` at ``sample_rate`` on ``grid`` (default: 10 ms).

    ``n_frames``: default ``grid.frames_for(N, sample_rate)`` (so-vits-svc's ``N // hop`` at the
    grid's rate) on a given grid, and ``N16k // 160 + 1`` on the default grid. ``estimator``:
    a network from :func:`load_pitch_estimator`, to reuse across calls (neural methods).
    """
    x = np.asarray(audio)
    if x.ndim != 1:
        raise ValueError(f"extract_f0 expects mono audio [N], got shape {x.shape}")
    if grid is None:
        grid = NATIVE_GRID
        if n_frames is None:
            n_frames = resampled_length(x.size, sample_rate, PITCH_SAMPLE_RATE) // PITCH_HOP + 1
    elif n_frames is None:
        n_frames = grid.frames_for(x.size, sample_rate)
    if n_frames < 0:
        raise ValueError(f"n_frames must be >= 0, got {n_frames}")
    dst_times = grid.times(n_frames)
    method = options.method

    if method in NEURAL_METHODS:
        times, f0 = neural_f0(options, x, sample_rate, estimator)
        if options.alignment == "length" and f0.size:
            placed = resize_f0(f0, n_frames, "nearest")
        else:
            placed = f0_at_times(f0, times, dst_times, "nearest")
    else:
        pitch_range = ClassicRange(options.f0_min, options.f0_max)
        if method == "pm":
            voicing = options.effective_threshold
            assert voicing is not None
            times, f0 = pm(x, sample_rate, grid.period_s, pitch_range, voicing)
            if options.alignment == "length":
                placed = _centred_fit(f0, n_frames)
            else:
                placed = f0_at_times(f0, times, dst_times, "nearest")
        else:
            times, f0 = classic_f0(method, x, sample_rate, grid.period_s, pitch_range)  # type: ignore[arg-type]
            if options.alignment == "length":
                placed = resize_f0(f0, n_frames, "linear")
            else:
                # pyworld frames already sit at i * period: trim or pad to the grid.
                placed = np.zeros(n_frames, dtype=np.float32)
                k = min(n_frames, f0.size)
                placed[:k] = f0[:k]
    return F0Track(np.asarray(placed, dtype=np.float32), dst_times, grid, method)


__all__ = [
    "ESTIMATOR_ENTRY_POINTS",
    "F0Track",
    "FrameGrid",
    "NATIVE_GRID",
    "NEURAL_METHODS",
    "OnnxPitchEstimator",
    "PITCH_METHODS",
    "PitchExtractionError",
    "PitchEstimator",
    "PitchOptions",
    "crepe_segments",
    "extract_f0",
    "load_pitch_estimator",
    "neural_f0",
]
