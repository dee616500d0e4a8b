"""Conversion settings, validated at the edge (CLI or API) before any audio is touched."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from svc_runtime.audio.write import OUTPUT_FORMATS
from svc_runtime.diffusion.samplers import METHODS as DIFFUSION_METHODS
from svc_runtime.signal.slicer import SlicerConfig
from svc_runtime.vocabulary import DEFAULT_SEED


@dataclass(frozen=True)
class ConvertOptions:
    """Everything one conversion needs besides the bundle and the audio.

    Times in seconds, levels in dB, pitch shift in semitones. `f0_method`: None tracks pitch with the
    bundle's pitch network inside the conversion graph; a classic method (pm, harvest, dio) or crepe
    runs on the host and feeds the `converter_f0` graph.

    Diffusion (bundles exported with --vocoder / --diffusion-*), as so-vits-svc 4.1:
    `shallow_diffusion` refines each generator chunk with the diffusion model from step
    `k_step` (<= the model's k_step_max); `only_diffusion` renders from noise without the
    generator; `enhance` re-synthesises the output with the NSF-HiFiGAN vocoder at
    `enhancer_adaptive_key` semitones (ignored with shallow diffusion, as in so-vits-svc).
    `diffusion_method` / `diffusion_speedup`: the sampler and its step factor (None: the model's).

    Batching: at most `batch_size` chunk windows per generator run, and fewer where their
    windows together would exceed `batch_seconds` of audio (one window always runs): the
    generator's inputs, activations and outputs grow with the samples in a batch (a 30 s
    window's sine-noise input alone is 48 MB at 44.1 kHz), so this bounds the memory.
    """

    speaker: str | int | None = None
    speaker_mix: Path | None = None
    transpose: float = 0.0
    f0_method: str | None = None
    f0_filter: bool = False
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
    batch_seconds: float = 40.0
    output_format: str = "wav"
    shallow_diffusion: bool = False
    k_step: int = 100
    only_diffusion: bool = False
    enhance: bool = False
    enhancer_adaptive_key: float = 0.0
    diffusion_method: str | None = None
    diffusion_speedup: int | None = None

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
            (self.batch_seconds > 0.0, "batch seconds (audio per generator run) must be > 0"),
            (self.output_format in OUTPUT_FORMATS, f"output format must be one of {sorted(OUTPUT_FORMATS)}"),
            (self.speaker is None or self.speaker_mix is None, "give a speaker or a speaker mix, not both"),
            (not (self.shallow_diffusion and self.only_diffusion), "choose shallow diffusion or only diffusion, not both"),
            (self.k_step >= 1, "k_step (shallow diffusion steps) must be >= 1"),
            (not (self.only_diffusion and self.auto_predict_f0), "auto F0 prediction needs the generator, not only diffusion"),
            (-48.0 <= self.enhancer_adaptive_key <= 48.0, "enhancer adaptive key must be within +-48 semitones"),
            (self.diffusion_method is None or self.diffusion_method in DIFFUSION_METHODS,
             f"diffusion method must be one of {', '.join(DIFFUSION_METHODS)}"),
            (self.diffusion_speedup is None or self.diffusion_speedup >= 2,
             "diffusion speedup must be >= 2 (the runtime samplers skip steps)"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    @property
    def slicer(self) -> SlicerConfig:
        return SlicerConfig(threshold_db=self.slice_db)
