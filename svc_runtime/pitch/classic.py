"""Classic (non-neural) F0 trackers as so-vits-svc 4.1 runs them: Harvest and DIO (pyworld, each
refined with StoneMask) and Praat's autocorrelation tracker (parselmouth, so-vits-svc's "pm").

Each function takes mono audio ``[N]`` at ``sample_rate`` and returns ``(times_s [T] float64,
f0_hz [T] float32)``, raw: 0 = unvoiced, no interpolation. Frames are computed on the
method's own analysis grid (``frame_period_s``); :mod:`svc_runtime.pitch.extract` places
them on any ``(sr, hop)`` grid. Needs the optional extra ``classic`` (pyworld,
praat-parselmouth); numpy only otherwise.
"""

from __future__ import annotations

import functools
import importlib
import importlib.machinery
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Literal

import numpy as np

from svc_runtime.pitch.methods import CLASSIC_METHODS, PM_VOICING_THRESHOLD
from svc_runtime.vocabulary import F0_MAX_HZ, F0_MIN_HZ

ClassicMethod = Literal["harvest", "dio", "pm"]
DEFAULT_FRAME_PERIOD_S = 0.01
"""The classic methods' own grid in this toolkit: 10 ms (WORLD frame i at i * 10 ms)."""

PM_PERIODS_PER_WINDOW = 3.0
"""Praat's autocorrelation window spans 3 periods of the pitch floor."""

INSTALL_HINT = 'install the classic pitch extra: pip install "svc-toolkit[classic]"'


class ClassicPitchUnavailable(ImportError):
    """pyworld or parselmouth is not installed (or cannot be loaded)."""


@dataclass(frozen=True)
class ClassicRange:
    """Search range of a classic tracker in Hz (so-vits-svc's f0_min / f0_max)."""

    f0_min: float = F0_MIN_HZ
    f0_max: float = F0_MAX_HZ

    def __post_init__(self) -> None:
        if not 0.0 < self.f0_min < self.f0_max:
            raise ValueError(
                f"pitch range must satisfy 0 < f0_min < f0_max, got f0_min={self.f0_min}, f0_max={self.f0_max}"
            )


def _load_extension_without_init(package: str, module: str) -> ModuleType:
    """Load ``package/module.<ext>`` (a compiled extension) without running ``package/__init__``."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ClassicPitchUnavailable(f"{package} is not installed; {INSTALL_HINT}")
    for folder in spec.submodule_search_locations:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = Path(folder) / f"{module}{suffix}"
            if path.is_file():
                name = f"{package}.{module}"
                loader = importlib.machinery.ExtensionFileLoader(name, str(path))
                ext_spec = importlib.util.spec_from_file_location(name, str(path), loader=loader)
                assert ext_spec is not None
                extension = importlib.util.module_from_spec(ext_spec)
                loader.exec_module(extension)
                return extension
    raise ClassicPitchUnavailable(f"{package}: compiled module `{module}` not found; {INSTALL_HINT}")


@functools.cache
def load_pyworld() -> ModuleType:
    """The pyworld module (``harvest``, ``dio``, ``stonemask``, ...).

    pyworld 0.3.5's ``__init__`` imports ``pkg_resources`` only to read its own
    version, and setuptools >= 81 no longer ships ``pkg_resources``. When that
    import fails, the compiled extension ``pyworld/pyworld.*.so`` (which holds
    every function) is loaded directly, so any setuptools version works.
    """
    try:
        return importlib.import_module("pyworld")
    except ModuleNotFoundError as error:
        if error.name == "pyworld":
            raise ClassicPitchUnavailable(f"pyworld is not installed; {INSTALL_HINT}") from None
        if error.name != "pkg_resources":
            raise
    return _load_extension_without_init("pyworld", "pyworld")


@functools.cache
def load_parselmouth() -> ModuleType:
    """The parselmouth module (Praat), with a clear error when it is missing."""
    try:
        return importlib.import_module("parselmouth")
    except ModuleNotFoundError as error:
        if error.name != "parselmouth":
            raise
        raise ClassicPitchUnavailable(f"praat-parselmouth is not installed; {INSTALL_HINT}") from None


def _check_audio(audio: np.ndarray, sample_rate: int, method: str) -> np.ndarray:
    x = np.asarray(audio)
    if x.ndim != 1:
        raise ValueError(f"{method}: expected mono audio [N], got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{method}: expected float audio in [-1, 1], got dtype {x.dtype}")
    if sample_rate <= 0:
        raise ValueError(f"{method}: sample rate must be positive, got {sample_rate}")
    if x.size == 0:
        raise ValueError(f"{method}: audio is empty")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{method}: audio contains NaN or infinite samples")
    return np.ascontiguousarray(x, dtype=np.float64)


def _check_period(frame_period_s: float, method: str) -> float:
    if not 0.0 < frame_period_s <= 0.1:
        raise ValueError(f"{method}: frame period must be in (0, 0.1] s, got {frame_period_s}")
    return float(frame_period_s)


def harvest(
    audio: np.ndarray,
    sample_rate: int,
    frame_period_s: float = DEFAULT_FRAME_PERIOD_S,
    pitch_range: ClassicRange = ClassicRange(),
) -> tuple[np.ndarray, np.ndarray]:
    """WORLD Harvest refined by StoneMask (so-vits-svc's ``HarvestF0Predictor``).

    Frame ``i`` at ``i * frame_period_s`` s, ``T = int(duration / period) + 1``.
    """
    t, f0 = _world("harvest", audio, sample_rate, frame_period_s, pitch_range)
    return t, f0.astype(np.float32)


def dio(
    audio: np.ndarray,
    sample_rate: int,
    frame_period_s: float = DEFAULT_FRAME_PERIOD_S,
    pitch_range: ClassicRange = ClassicRange(),
) -> tuple[np.ndarray, np.ndarray]:
    """WORLD DIO refined by StoneMask, rounded to 0.1 Hz (so-vits-svc's ``DioF0Predictor``)."""
    t, f0 = _world("dio", audio, sample_rate, frame_period_s, pitch_range)
    return t, np.round(f0, 1).astype(np.float32)


def _world(
    method: str, audio: np.ndarray, sample_rate: int, frame_period_s: float, pitch_range: ClassicRange
) -> tuple[np.ndarray, np.ndarray]:
    """pyworld's ``harvest`` or ``dio`` refined by StoneMask: ``(times_s [T] float64, f0_hz [T] float64)``."""
    x = _check_audio(audio, sample_rate, method)
    period = _check_period(frame_period_s, method)
    pw = load_pyworld()
    f0, t = getattr(pw, method)(
        x, fs=sample_rate, f0_floor=pitch_range.f0_min, f0_ceil=pitch_range.f0_max, frame_period=1000.0 * period
    )
    return np.asarray(t, dtype=np.float64), pw.stonemask(x, f0, t, sample_rate)


def pm(
    audio: np.ndarray,
    sample_rate: int,
    frame_period_s: float = DEFAULT_FRAME_PERIOD_S,
    pitch_range: ClassicRange = ClassicRange(),
    voicing_threshold: float = PM_VOICING_THRESHOLD,
) -> tuple[np.ndarray, np.ndarray]:
    """Praat autocorrelation pitch (so-vits-svc's ``PMF0Predictor``: ``to_pitch_ac`` with voicing 0.6).

    Praat centres its frames inside the signal (the first one about
    1.5 / f0_min s in), so the times are Praat's own, not ``i * period``.
    Audio too short for one analysis window gives no frames.
    """
    x = _check_audio(audio, sample_rate, "pm")
    period = _check_period(frame_period_s, "pm")
    parselmouth = load_parselmouth()
    if x.size / sample_rate < PM_PERIODS_PER_WINDOW / pitch_range.f0_min:
        # Praat refuses a sound shorter than its window (3 periods of f0_min): no frames.
        return np.zeros(0, dtype=np.float64), np.zeros(0, dtype=np.float32)
    sound = parselmouth.Sound(x, sampling_frequency=float(sample_rate))
    try:
        pitch = sound.to_pitch_ac(
            time_step=period,
            voicing_threshold=voicing_threshold,
            pitch_floor=pitch_range.f0_min,
            pitch_ceiling=pitch_range.f0_max,
        )
    except parselmouth.PraatError as error:
        raise ValueError(f"pm: Praat could not analyse the audio: {error}") from error
    f0 = np.nan_to_num(pitch.selected_array["frequency"])
    return np.asarray(pitch.xs(), dtype=np.float64), f0.astype(np.float32)


CLASSIC_TRACKERS = {"harvest": harvest, "dio": dio, "pm": pm}


def classic_f0(
    method: ClassicMethod,
    audio: np.ndarray,
    sample_rate: int,
    frame_period_s: float = DEFAULT_FRAME_PERIOD_S,
    pitch_range: ClassicRange = ClassicRange(),
) -> tuple[np.ndarray, np.ndarray]:
    """Run one classic tracker by name: ``(times_s [T], f0_hz [T])``."""
    if method not in CLASSIC_TRACKERS:
        raise ValueError(f"unknown classic pitch method {method!r}; choose one of {CLASSIC_METHODS}")
    return CLASSIC_TRACKERS[method](audio, sample_rate, frame_period_s, pitch_range)


__all__ = [
    "CLASSIC_METHODS",
    "ClassicMethod",
    "ClassicPitchUnavailable",
    "ClassicRange",
    "DEFAULT_FRAME_PERIOD_S",
    "PM_VOICING_THRESHOLD",
    "classic_f0",
    "dio",
    "harvest",
    "load_parselmouth",
    "load_pyworld",
    "pm",
]
