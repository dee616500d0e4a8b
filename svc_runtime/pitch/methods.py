"""The registry of F0 methods: name, frame grid, default voicing threshold, salience decoders.

One entry per method so-vits-svc 4.1 knows; every user (runtime CLI and pipeline, training
features, the exporter's pitch graph) looks methods up here instead of listing them again.
Neural methods (RMVPE, FCPE, CREPE) output a salience ``[T, 360]`` on 16 kHz audio every
160 samples, decoded to Hz by :class:`svc_runtime.pitch.decode.SalienceDecoder`; classic ones
(Harvest, DIO, Praat's pm) run in :mod:`svc_runtime.pitch.classic` on a 10 ms grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from svc_runtime.vocabulary import PITCH_HOP, PITCH_SAMPLE_RATE

RMVPE_THRESHOLD = 0.05
"""so-vits-svc's RMVPE F0 predictor default."""
FCPE_THRESHOLD = 0.05
"""so-vits-svc's FCPE F0 predictor default (torchfcpe's own is 0.006)."""
CREPE_THRESHOLD = 0.05
"""so-vits-svc's ``cr_threshold`` (periodicity)."""
PM_VOICING_THRESHOLD = 0.6
"""so-vits-svc's voicing threshold for Praat's autocorrelation tracker (Praat's default is 0.45)."""

RMVPE_DECODERS: tuple[str, ...] = ("local_average",)
"""RMVPE's only decoder: salience-weighted mean cents of the 9 bins around the argmax."""
FcpeDecoder = Literal["local_argmax", "argmax"]
FCPE_DECODERS: tuple[str, ...] = ("local_argmax", "argmax")
CrepeDecoder = Literal["viterbi", "weighted_argmax", "argmax"]
CREPE_DECODERS: tuple[str, ...] = ("viterbi", "weighted_argmax", "argmax")


@dataclass(frozen=True)
class PitchMethod:
    """One F0 method. ``sample_rate`` / ``hop``: its native frame grid (frame i at i * hop / rate s).
    ``threshold``: default voicing threshold (None: the method has none). ``decoders``: salience
    decoders of a neural method, the default first (empty for classic methods)."""

    name: str
    neural: bool
    threshold: float | None
    decoders: tuple[str, ...] = ()
    sample_rate: int = PITCH_SAMPLE_RATE
    hop: int = PITCH_HOP

    @property
    def default_decoder(self) -> str | None:
        return self.decoders[0] if self.decoders else None

    def check_decoder(self, decoder: str | None) -> str | None:
        """``decoder`` (None: the default) if this method has it, else ValueError naming the choices."""
        if decoder is None:
            return self.default_decoder
        if decoder not in self.decoders:
            choices = ", ".join(self.decoders) or "none"
            raise ValueError(f"{self.name.upper()} decoder must be one of {choices}, got {decoder!r}")
        return decoder


REGISTRY: dict[str, PitchMethod] = {
    m.name: m
    for m in (
        PitchMethod("harvest", neural=False, threshold=None),
        PitchMethod("dio", neural=False, threshold=None),
        PitchMethod("pm", neural=False, threshold=PM_VOICING_THRESHOLD),
        PitchMethod("rmvpe", neural=True, threshold=RMVPE_THRESHOLD, decoders=RMVPE_DECODERS),
        PitchMethod("fcpe", neural=True, threshold=FCPE_THRESHOLD, decoders=FCPE_DECODERS),
        PitchMethod("crepe", neural=True, threshold=CREPE_THRESHOLD, decoders=CREPE_DECODERS),
    )
}

PITCH_METHODS: tuple[str, ...] = tuple(REGISTRY)
CLASSIC_METHODS: tuple[str, ...] = tuple(name for name, m in REGISTRY.items() if not m.neural)
NEURAL_METHODS: tuple[str, ...] = tuple(name for name, m in REGISTRY.items() if m.neural)


def pitch_method(name: str, *, neural: bool | None = None) -> PitchMethod:
    """The registry entry of ``name``; ValueError naming the choices when unknown (or not ``neural`` as asked)."""
    method = REGISTRY.get(name)
    if method is None:
        raise ValueError(f"unknown pitch method {name!r}; choose one of {', '.join(PITCH_METHODS)}")
    if neural is not None and method.neural != neural:
        kind, names = ("neural", NEURAL_METHODS) if neural else ("classic", CLASSIC_METHODS)
        raise ValueError(f"{name} is not a {kind} pitch method ({', '.join(names)})")
    return method


__all__ = [
    "CLASSIC_METHODS",
    "CREPE_DECODERS",
    "CREPE_THRESHOLD",
    "CrepeDecoder",
    "FCPE_DECODERS",
    "FCPE_THRESHOLD",
    "FcpeDecoder",
    "NEURAL_METHODS",
    "PITCH_METHODS",
    "PM_VOICING_THRESHOLD",
    "PitchMethod",
    "REGISTRY",
    "RMVPE_DECODERS",
    "RMVPE_THRESHOLD",
    "pitch_method",
]
