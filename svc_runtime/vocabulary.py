"""Shared vocabulary of the three packages: rates, hops, enums and defaults, written once.

Everything here is so-vits-svc 4.1's own value; `svc_train`, `svc_export` and the
runtime import these names instead of restating the numbers (a restated enum already
drifted once: a config with ``unit_interpolate_mode: linear`` passed load and failed
at conversion).
"""

from __future__ import annotations

from typing import Literal, get_args

ENCODER_SAMPLE_RATE = 16000
"""Hz of the audio every speech encoder (ContentVec / HuBERT / WavLM ...) takes."""
ENCODER_HOP = 320
"""Samples at `ENCODER_SAMPLE_RATE` per content-unit frame (20 ms, ~50 frames/s)."""

PITCH_SAMPLE_RATE = 16000
"""Hz of the audio the neural pitch networks (RMVPE, FCPE, CREPE) take."""
PITCH_HOP = 160
"""Samples at `PITCH_SAMPLE_RATE` per pitch frame (10 ms); N samples give N // 160 + 1 frames."""

UnitInterpolateMode = Literal["left", "nearest"]
UNIT_INTERPOLATE_MODES: tuple[str, ...] = get_args(UnitInterpolateMode)
"""so-vits-svc 4.1's ``unit_interpolate_mode`` values (``repeat_expand_2d``); it knows no other."""

DEFAULT_SEED = 52468
"""Seed of every random term of a conversion (prior noise, NSF phases and noise) when none is given."""

F0_MIN_HZ = 50.0
"""Lower edge of the coarse pitch mapping and default floor of the F0 methods."""
F0_MAX_HZ = 1100.0
"""Upper edge of the coarse pitch mapping and default ceiling of the F0 methods."""


__all__ = [
    "DEFAULT_SEED",
    "ENCODER_HOP",
    "ENCODER_SAMPLE_RATE",
    "F0_MAX_HZ",
    "F0_MIN_HZ",
    "PITCH_HOP",
    "PITCH_SAMPLE_RATE",
    "UNIT_INTERPOLATE_MODES",
    "UnitInterpolateMode",
]
