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

    Times in seconds, levels in dB, pitch shift in semitones. `causal`: derive F0 and units
    the way `StreamingConverter` can (see `svc_runtime.pipeline.features.causal_f0`): F0
    one frame late, unvoiced for the first 100 ms, the last voiced value held over unvoiced frames, units placed by
    time one encoder frame late; default False is so-vits-svc's (F0 interpolated across
    unvoiced gaps, units stretched by length).
    """

    speaker: str | int | None = None
    speaker_mix: Path | None = None
    transpose: float = 0.0
    f0_method: str | None = None
    f0_filter: bool = False
    causal: bool = False
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
