"""Conversion settings, validated at the edge (CLI or API) before any audio is touched."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from svc_runtime.audio.write import OUTPUT_FORMATS
from svc_runtime.signal.slicer import SlicerConfig

DEFAULT_SEED = 52468


@dataclass(frozen=True)
class ConvertOptions:
    """Everything one conversion needs besides the bundle and the audio.

    Times in seconds, levels in dB, pitch shift in semitones.
    """

    speaker: str | int | None = None
    speaker_mix: Path | None = None
    transpose: float = 0.0
    f0_method: str | None = None
    f0_filter: bool = False
    f0_fill: str = "interpolate"
    unit_alignment: str = "length"
    auto_predict_f0: bool = False
    blend_ratio: float = 0.0
    blend_mode: str = "auto"
    noise_scale: float = 0.4
    seed: int = DEFAULT_SEED
    loudness_mix: float = 1.0
    slice_db: float = -40.0
    pad_seconds: float = 0.5
    clip_seconds: float = 0.0
    max_window_seconds: float = 30.0
    context_seconds: float = 1.0
    crossfade_seconds: float = 0.05
    remove_dc: bool = True
    batch_size: int = 8
    output_format: str = "wav"

    def __post_init__(self) -> None:
        checks = [
            (self.f0_fill in ("interpolate", "hold"), "f0 fill must be interpolate (so-vits-svc) or hold (causal)"),
            (self.unit_alignment in ("length", "time"), "unit alignment must be length (so-vits-svc) or time (causal)"),
            (-48.0 <= self.transpose <= 48.0, "transpose must be within +-48 semitones"),
            (0.0 <= self.blend_ratio <= 1.0, "blend ratio (cluster/retrieval) must be in [0, 1]"),
            (self.blend_mode in ("auto", "retrieval", "cluster"), "blend mode must be auto, retrieval or cluster"),
            (0.0 <= self.noise_scale <= 2.0, "noise scale must be in [0, 2]"),
            (0.0 <= self.loudness_mix <= 1.0, "loudness mix must be in [0, 1] (1 keeps the output's loudness)"),
            (-100.0 <= self.slice_db <= 0.0, "slice threshold must be in [-100, 0] dB"),
            (self.pad_seconds >= 0.0, "pad seconds must be >= 0"),
            (self.clip_seconds >= 0.0, "clip seconds must be >= 0 (0 = whole slices)"),
            (self.max_window_seconds >= 2.0, "max window must be at least 2 s"),
            (self.context_seconds >= 0.0, "context seconds must be >= 0"),
            (self.crossfade_seconds >= 0.0, "crossfade seconds must be >= 0"),
            (self.crossfade_seconds <= self.context_seconds, "crossfade must not exceed the context"),
            (self.batch_size >= 1, "batch size must be >= 1"),
            (self.output_format in OUTPUT_FORMATS, f"output format must be one of {sorted(OUTPUT_FORMATS)}"),
            (self.speaker is None or self.speaker_mix is None, "give a speaker or a speaker mix, not both"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    @property
    def slicer(self) -> SlicerConfig:
        return SlicerConfig(threshold_db=self.slice_db)
