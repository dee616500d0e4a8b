"""Phases of the NSF sine source, per frame, exact over minutes and carried across chunks.

The NSF-HiFiGAN source of so-vits-svc 4.1 builds 9 sines (the fundamental and 8
harmonics) from an f0 that is constant within each frame of ``hop`` samples. The
reference accumulates the phase sample by sample in float32, which drifts between
backends over long inputs. Here the phase is accumulated once per frame, wrapped to
[0, 1) cycles, in float64; within a frame the phase is ``start + (j + 1) * increment``
(j = 0 .. hop-1), which float32 handles well because the start is already wrapped.

Conventions (the same as the generator's ``phase`` input):
- ``increment[b, t, h]``: cycles per sample of harmonic h+1 in frame t, computed with the
  reference's float32 arithmetic, ``(float32(f0) * (h + 1) / source_sr) mod 1``.
- ``phases[b, t, h]``: phase in cycles, in [0, 1), *before* the first sample of frame t.
  Sample j of frame t (0-based) has phase ``phases[b, t, h] + (j + 1) * increment[b, t, h]``.
- ``rand_ini[b, h]``: the reference's random initial phases (cycles); element 0 (the
  fundamental) is always treated as 0, as the reference forces it.
- ``end_phase[b, h]``: the phase before the first sample of the frame after the last one,
  i.e. the ``initial_phase`` to pass for the next chunk.
"""

from __future__ import annotations

import numpy as np

NSF_HARMONICS = 9
"""Sine components of the so-vits-svc NSF source: the fundamental and 8 overtones."""

NSF_SOURCE_SAMPLE_RATE = 44100
"""Sample rate the so-vits-svc 4.1 NSF source assumes for its phase increments.

A quirk of the reference: `SynthesizerTrn` takes `sampling_rate=44100` as a default
keyword that the 4.1 config never sets (it lives in `data`, not `model`), so the sine
source always computes increments as if the audio were at 44.1 kHz, whatever the
model's real rate. Models trained that way expect it; keep it.
"""


PHASE_FIXED_POINT_BITS = 40
"""Carried NSF phases are fixed point: cycles * 2^40, an integer in [0, 2^40).

Why 40 bits: every float32 phase increment of at least 2^-17 cycles per sample (f0 above ~0.34 Hz)
is an exact multiple of 2^-40, so the conversion graph accumulates per-frame phase advances without
any rounding, over any length, with no float64 (which TensorRT cannot run)."""

PHASE_LIMB_BITS = 14
"""Bits per limb: the 40-bit phase crosses graph boundaries as int32 limbs (OpenVINO's CPU plugin and
TensorRT compute integers in 32 bits, so no value in the graph may reach 2^31)."""

PHASE_LIMBS = 3
"""Limbs of one carried phase: value = limb[2] * 2^28 + limb[1] * 2^14 + limb[0], limbs 0 and 1 in
[0, 2^14), limb 2 in [0, 2^12). Tensors hold them on the axis before the harmonics: phase_in /
phase_out are int32 [B, 3, H] (limb k of harmonic h at [b, k, h]), a window's phase is [3, H]."""

PHASE_MAX_FRAMES = (1 << 17) - 1
"""Most frames one conversion-graph window may have: the graph sums up to this many 14-bit limbs (plus
the carried one) in int32, (2^17 - 1) * (2^14 - 1) + 2^14 - 1 < 2^31. At 44.1 kHz / hop 512 that is
25 minutes, beyond any window the runtime makes; hosts refuse longer windows."""


def phase_to_limbs(fixed: np.ndarray) -> np.ndarray:
    """Fixed-point phases [..., H] (int64 cycles * 2^40, any integer: taken mod 2^40) -> int32 limbs [..., 3, H]."""
    value = np.mod(np.asarray(fixed, dtype=np.int64), np.int64(1) << PHASE_FIXED_POINT_BITS)
    shifts = np.arange(PHASE_LIMBS, dtype=np.int64) * PHASE_LIMB_BITS
    limbs = (value[..., None, :] >> shifts[:, None]) & ((1 << PHASE_LIMB_BITS) - 1)
    return limbs.astype(np.int32)


def limbs_to_phase(limbs: np.ndarray) -> np.ndarray:
    """int32 limbs [..., 3, H] -> fixed-point phases [..., H] int64 (cycles * 2^40), mod 2^40."""
    limbs = np.asarray(limbs)
    if limbs.ndim < 2 or limbs.shape[-2] != PHASE_LIMBS:
        raise ValueError(f"phase limbs must be [..., {PHASE_LIMBS}, H], got shape {limbs.shape}")
    shifts = np.arange(PHASE_LIMBS, dtype=np.int64) * PHASE_LIMB_BITS
    value = (limbs.astype(np.int64) << shifts[:, None]).sum(axis=-2)
    return np.mod(value, np.int64(1) << PHASE_FIXED_POINT_BITS)


def limbs_to_cycles(limbs: np.ndarray) -> np.ndarray:
    """int32 limbs [..., 3, H] -> phases in cycles [..., H] float64 (exact: 40 bits fit a double)."""
    return limbs_to_phase(limbs).astype(np.float64) / float(1 << PHASE_FIXED_POINT_BITS)


def phase_increments(
    f0: np.ndarray, source_sr: float = NSF_SOURCE_SAMPLE_RATE, harmonics: int = NSF_HARMONICS
) -> np.ndarray:
    """Per-sample phase increments in cycles, float32, as the reference computes them.

    f0: [B, T] Hz (0 or negative = unvoiced; such frames still advance the phase the way
    the reference does). Returns [B, T, harmonics] float32 in [0, 1).
    """
    f0 = np.asarray(f0)
    if f0.ndim != 2:
        raise ValueError(f"f0 must be [B, T] Hz, got shape {f0.shape}")
    multiples = np.arange(1, harmonics + 1, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        scaled = f0.astype(np.float32)[:, :, None] * multiples
        return np.mod(scaled / np.float32(source_sr), np.float32(1.0)).astype(np.float32)


def frame_start_phases(
    f0: np.ndarray,
    hop: int,
    source_sr: float = NSF_SOURCE_SAMPLE_RATE,
    rand_ini: np.ndarray | None = None,
    initial_phase: np.ndarray | None = None,
    harmonics: int = NSF_HARMONICS,
) -> tuple[np.ndarray, np.ndarray]:
    """Start phase of every frame, accumulated in float64 and wrapped to [0, 1).

    f0: [B, T] Hz; hop: samples per frame; rand_ini: [B, harmonics] cycles (element 0
    ignored) used when the conversion starts here; initial_phase: [B, harmonics] cycles
    carried from the previous chunk (its ``end_phase``), used as is. Give at most one of
    the two; with neither every component starts at phase 0.

    Returns ``(phases [B, T, harmonics] float64, end_phase [B, harmonics] float64)``.
    Splitting f0 into consecutive chunks and passing each chunk's ``end_phase`` as the
    next chunk's ``initial_phase`` gives the same phases as one call on the whole.
    """
    if hop <= 0:
        raise ValueError(f"hop must be a positive number of samples, got {hop}")
    if rand_ini is not None and initial_phase is not None:
        raise ValueError("give rand_ini (start of a conversion) or initial_phase (a carried phase), not both")
    increment = phase_increments(f0, source_sr, harmonics).astype(np.float64)
    batch = increment.shape[0]
    start = _start_phase(batch, harmonics, rand_ini, initial_phase)
    # hop * increment is exact in float64 (a float32 times a small integer), so is its wrap.
    frame_advance = np.mod(hop * increment, 1.0)
    cumulative = np.cumsum(frame_advance, axis=1)
    before = np.concatenate([np.zeros_like(cumulative[:, :1]), cumulative[:, :-1]], axis=1)
    phases = np.mod(start[:, None, :] + before, 1.0)
    total = cumulative[:, -1] if cumulative.shape[1] else np.zeros((batch, harmonics))
    end_phase = np.mod(start + total, 1.0)
    return phases, end_phase


def _start_phase(
    batch: int, harmonics: int, rand_ini: np.ndarray | None, initial_phase: np.ndarray | None
) -> np.ndarray:
    if initial_phase is not None:
        start = np.asarray(initial_phase, dtype=np.float64)
        name = "initial_phase"
    elif rand_ini is not None:
        start = np.array(rand_ini, dtype=np.float32).astype(np.float64)
        name = "rand_ini"
    else:
        return np.zeros((batch, harmonics))
    if start.shape != (batch, harmonics):
        raise ValueError(f"{name} must be [B, {harmonics}] = [{batch}, {harmonics}] cycles, got {start.shape}")
    if name == "rand_ini":
        start = start.copy()
        start[:, 0] = 0.0
    return np.mod(start, 1.0)


__all__ = [
    "NSF_HARMONICS", "NSF_SOURCE_SAMPLE_RATE", "PHASE_FIXED_POINT_BITS", "PHASE_LIMBS", "PHASE_LIMB_BITS",
    "PHASE_MAX_FRAMES", "frame_start_phases", "limbs_to_cycles", "limbs_to_phase", "phase_increments",
    "phase_to_limbs",
]
