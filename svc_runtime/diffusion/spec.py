"""What a host needs to run shallow diffusion and the vocoder: ``diffusion.json``, typed.

Written by :func:`svc_export.diffusion_graphs.export_diffusion` beside the graphs and
copied into the bundle manifest as its ``diffusion`` section. Without the diffusion part
(``timesteps`` absent) the folder holds only the vocoder, enough for ``--enhance``
(`VocoderOnlySpec`); `read_section` reads either form. Every rule is part of the dataclasses
(``schema_check``), so `svc_runtime.schema.read_dataclass` reads them anywhere, the manifest included.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from svc_runtime.diffusion.mel import MelSpec
from svc_runtime.diffusion.samplers import METHODS
from svc_runtime.errors import BundleError
from svc_runtime.schema import DEFAULT_DIALECT, Dialect, ErrorFactory, Invalid, read_dataclass, to_mapping

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

    def schema_check(self) -> None:
        """The mel settings fit together (`read_dataclass` calls this after the fields)."""
        try:
            self.mel.validate()
        except ValueError as exc:
            raise Invalid("", f"does not fit: {exc}") from None

    @classmethod
    def from_dict(cls, raw: Any, source: str) -> VocoderSpec:
        return read_dataclass(cls, raw, source, "vocoder", DiffusionSpecError)


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

    def schema_check(self) -> None:
        """Rules across fields (`read_dataclass` calls this after the fields, the vocoder's included)."""
        if self.method not in METHODS:
            raise Invalid("method", f"must be one of {METHODS}, got {self.method!r}")
        if not 1 <= self.k_step_max <= self.timesteps:
            raise Invalid("k_step_max", f"must be in [1, timesteps={self.timesteps}], got {self.k_step_max}")
        vocoder = self.vocoder
        if self.sampling_rate != vocoder.sampling_rate or self.hop_size != vocoder.hop_size:
            # so-vits-svc requires the same frame grid for the diffusion model and the vocoder
            raise Invalid(
                "", f"diffusion grid {self.sampling_rate} Hz / hop {self.hop_size} differs from the vocoder's "
                f"{vocoder.sampling_rate} Hz / hop {vocoder.hop_size}"
            )

    @classmethod
    def from_dict(cls, raw: Any, source: str) -> DiffusionSpec:
        if not isinstance(raw, dict):
            raise DiffusionSpecError(f"{source}: the diffusion section must be a mapping")
        return read_dataclass(cls, raw, source, error=DiffusionSpecError)


@dataclass(frozen=True)
class VocoderOnlySpec:
    """The section of a bundle exported with ``--vocoder`` alone: the enhancer's vocoder, no diffusion model."""

    vocoder: VocoderSpec

    def to_dict(self) -> dict[str, Any]:
        return to_mapping(self)


def read_section(
    raw: Any, where: str, name: str = "", error: ErrorFactory = DiffusionSpecError,
    dialect: Dialect = DEFAULT_DIALECT,
) -> DiffusionSpec | VocoderOnlySpec:
    """A ``diffusion`` section in either form: the full spec when it has ``timesteps``, else the vocoder's alone."""
    cls = DiffusionSpec if isinstance(raw, Mapping) and "timesteps" in raw else VocoderOnlySpec
    return read_dataclass(cls, raw, where, name, error, dialect)


__all__ = [
    "CONDITION_GRAPH",
    "DENOISER_GRAPH",
    "SPEC_FILE",
    "VOCODER_GRAPH",
    "DiffusionSpec",
    "DiffusionSpecError",
    "VocoderOnlySpec",
    "VocoderSpec",
    "read_section",
]
