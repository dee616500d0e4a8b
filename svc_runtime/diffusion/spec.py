"""What a host needs to run shallow diffusion and the vocoder: ``diffusion.json``, typed.

Written by :func:`svc_export.diffusion_graphs.export_diffusion` beside the graphs (and
meant to be copied into the bundle manifest as its ``diffusion`` section). Without the
diffusion part (``timesteps`` absent) the folder holds only the vocoder, enough for
``--enhance``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from svc_runtime.diffusion.mel import MelSpec
from svc_runtime.diffusion.samplers import METHODS
from svc_runtime.errors import BundleError
from svc_runtime.schema import read_dataclass, to_mapping

SPEC_FILE = "diffusion.json"
CONDITION_GRAPH = "diffusion_condition"
DENOISER_GRAPH = "diffusion_denoiser"
VOCODER_GRAPH = "nsf_hifigan"


class DiffusionSpecError(BundleError):
    """A diffusion section that cannot be used; names the field and what is wrong."""


@dataclass(frozen=True)
class VocoderSpec:
    sampling_rate: int
    hop_size: int
    num_mels: int
    n_fft: int
    win_size: int
    fmin: float
    fmax: float
    harmonics: int = 9
    graph: str = f"{VOCODER_GRAPH}.onnx"

    @property
    def mel(self) -> MelSpec:
        return MelSpec(self.sampling_rate, self.num_mels, self.n_fft, self.win_size, self.hop_size, self.fmin, self.fmax)

    def to_dict(self) -> dict[str, Any]:
        return to_mapping(self)

    @classmethod
    def from_dict(cls, raw: Any, source: str) -> VocoderSpec:
        spec = read_dataclass(cls, raw, source, "vocoder", DiffusionSpecError)
        try:
            spec.mel.validate()
        except ValueError as exc:
            raise DiffusionSpecError(f"{source}: vocoder: {exc}") from exc
        return spec


@dataclass(frozen=True)
class DiffusionSpec:
    vocoder: VocoderSpec
    timesteps: int
    k_step_max: int
    max_beta: float
    spec_min: float
    spec_max: float
    unit_channels: int
    hidden: int
    n_spk: int
    sampling_rate: int
    hop_size: int
    method: str
    speedup: int
    speakers: dict[str, int] = field(default_factory=dict)
    condition_graph: str = f"{CONDITION_GRAPH}.onnx"
    denoiser_graph: str = f"{DENOISER_GRAPH}.onnx"

    @property
    def can_run_alone(self) -> bool:
        """True when trained on every step (``--only-diffusion`` possible)."""
        return self.k_step_max == self.timesteps

    def to_dict(self) -> dict[str, Any]:
        return to_mapping(self)

    @classmethod
    def from_dict(cls, raw: Any, source: str) -> DiffusionSpec:
        if not isinstance(raw, dict):
            raise DiffusionSpecError(f"{source}: the diffusion section must be a mapping")
        vocoder = VocoderSpec.from_dict(raw.get("vocoder"), source)
        spec = read_dataclass(cls, {**raw, "vocoder": to_mapping(vocoder)}, source, error=DiffusionSpecError)
        if spec.method not in METHODS:
            raise DiffusionSpecError(f"{source}: method must be one of {METHODS}, got {spec.method!r}")
        if not 1 <= spec.k_step_max <= spec.timesteps:
            raise DiffusionSpecError(f"{source}: k_step_max must be in [1, timesteps={spec.timesteps}], got {spec.k_step_max}")
        if spec.sampling_rate != vocoder.sampling_rate or spec.hop_size != vocoder.hop_size:
            # so-vits-svc requires the same frame grid for the diffusion model and the vocoder
            raise DiffusionSpecError(
                f"{source}: diffusion grid {spec.sampling_rate} Hz / hop {spec.hop_size} differs from the vocoder's "
                f"{vocoder.sampling_rate} Hz / hop {vocoder.hop_size}"
            )
        return spec


__all__ = [
    "CONDITION_GRAPH",
    "DENOISER_GRAPH",
    "SPEC_FILE",
    "VOCODER_GRAPH",
    "DiffusionSpec",
    "DiffusionSpecError",
    "VocoderSpec",
]
