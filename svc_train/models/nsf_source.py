"""Harmonic-plus-noise NSF source of so-vits-svc 4.1, with explicit, carried phases.

Torch twin of `svc_runtime.signal.nsf_phase` (same conventions, see there): the phase
is accumulated once per frame in float64 and wrapped, then expanded within each frame
in float32 without losing precision, so long inputs do not drift and a chunked or
exported run can supply the frame-start phases itself.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from svc_runtime.signal.nsf_phase import NSF_HARMONICS, NSF_SOURCE_SAMPLE_RATE

SINE_AMP = 0.1
"""Amplitude of each sine component in voiced samples."""
VOICED_NOISE_STD = 0.003
"""Std of the additive noise in voiced samples; unvoiced samples get SINE_AMP / 3."""

_SPLIT = 4096.0
"""Increments are split as hi + lo with hi on a 1/4096 grid: (j+1)*hi is then exact in float32
for any hop up to 2048, and (j+1)*lo is small, so the in-frame phase keeps ~1e-7 cycles."""


def phase_increments(f0: torch.Tensor, source_sr: float = NSF_SOURCE_SAMPLE_RATE,
                     harmonics: int = NSF_HARMONICS) -> torch.Tensor:
    """f0: [B, T] Hz -> [B, T, harmonics] float32 cycles per sample in [0, 1), the reference's arithmetic."""
    multiples = torch.arange(1, harmonics + 1, dtype=torch.float32, device=f0.device)
    scaled = f0.float().unsqueeze(-1) * multiples
    return torch.remainder(scaled / source_sr, 1.0)


def frame_start_phases(f0: torch.Tensor, hop: int, rand_ini: torch.Tensor | None = None,
                       initial_phase: torch.Tensor | None = None,
                       source_sr: float = NSF_SOURCE_SAMPLE_RATE,
                       harmonics: int = NSF_HARMONICS) -> tuple[torch.Tensor, torch.Tensor]:
    """Float64 start phase of every frame; see `svc_runtime.signal.nsf_phase.frame_start_phases`.

    f0: [B, T] Hz, rand_ini / initial_phase: [B, harmonics] cycles (rand_ini's element 0 is
    ignored). Returns (phases [B, T, harmonics] float64 in [0, 1), end_phase [B, harmonics]).
    """
    if rand_ini is not None and initial_phase is not None:
        raise ValueError("give rand_ini (start of a conversion) or initial_phase (a carried phase), not both")
    increment = phase_increments(f0, source_sr, harmonics).double()
    batch = increment.shape[0]
    if initial_phase is not None:
        start = initial_phase.double()
    elif rand_ini is not None:
        start = rand_ini.float().double().clone()
        start[:, 0] = 0.0
    else:
        start = torch.zeros(batch, harmonics, dtype=torch.float64, device=f0.device)
    if start.shape != (batch, harmonics):
        raise ValueError(f"initial phases must be [B, {harmonics}] = [{batch}, {harmonics}], got {tuple(start.shape)}")
    start = torch.remainder(start, 1.0)
    advance = torch.remainder(hop * increment, 1.0)
    cumulative = torch.cumsum(advance, dim=1)
    before = cumulative - advance
    phases = torch.remainder(start.unsqueeze(1) + before, 1.0)
    total = cumulative[:, -1] if cumulative.shape[1] else torch.zeros_like(start)
    return phases, torch.remainder(start + total, 1.0)


def sample_phases(frame_phases: torch.Tensor, increment: torch.Tensor, hop: int) -> torch.Tensor:
    """Phase of every sample, float32 cycles in [0, 1).

    frame_phases: [B, T, H] cycles before each frame's first sample, increment: [B, T, H]
    cycles per sample -> [B, T*hop, H]; sample j of frame t has frame_phases + (j+1)*increment.
    """
    b, t, h = increment.shape
    steps = torch.arange(1, hop + 1, dtype=torch.float32, device=increment.device).view(1, 1, hop, 1)
    inc = increment.float()
    inc_hi = torch.round(inc * _SPLIT) / _SPLIT
    inc_lo = inc - inc_hi
    in_frame = torch.remainder(steps * inc_hi.unsqueeze(2), 1.0) + steps * inc_lo.unsqueeze(2)
    phase = torch.remainder(frame_phases.float().unsqueeze(2) + in_frame, 1.0)
    return phase.reshape(b, t * hop, h)


def reference_sample_phases(f0: torch.Tensor, hop: int, rand_ini: torch.Tensor,
                            source_sr: float = NSF_SOURCE_SAMPLE_RATE,
                            harmonics: int = NSF_HARMONICS) -> torch.Tensor:
    """so-vits-svc 4.1's own per-sample running phase (float32), for bit-compatibility checks.

    f0: [B, T] Hz, rand_ini: [B, harmonics] -> [B, T*hop, harmonics] cycles, *not* wrapped.
    Its wrap-around only works for rising phase: where f0 < 0 (a predicted f0 can be) the
    running value grows by thousands of cycles and float32 rounding then costs ~1e-3
    cycles; on GPUs float32 accumulation drifts over long inputs. Not used by default.
    """
    f0_up = F.interpolate(f0.float()[:, None], scale_factor=hop).transpose(1, 2)
    fn = f0_up * torch.arange(1, harmonics + 1, dtype=torch.float32, device=f0.device)
    rad = (fn / source_sr) % 1
    rand_ini = rand_ini.float().clone()
    rand_ini[:, 0] = 0
    rad[:, 0, :] = rad[:, 0, :] + rand_ini
    wrapped = torch.cumsum(rad, 1) % 1
    drops = (wrapped[:, 1:, :] - wrapped[:, :-1, :]) < 0
    shift = torch.zeros_like(rad)
    shift[:, 1:, :] = drops * -1.0
    return torch.cumsum(rad + shift, dim=1)


class SourceModuleHnNSF(nn.Module):
    """Sine source merged to one excitation channel (`m_source`, parameters `l_linear.*`).

    f0: [B, T] Hz per frame; phase: [B, T, 9] frame-start phases or None (then computed from
    rand_ini, drawn uniformly when None); sine_noise: [B, T*hop, 9] standard normal or None
    (drawn). Returns the harmonic excitation [B, T*hop, 1] (after the linear merge and tanh).
    """

    def __init__(self, source_sr: float = NSF_SOURCE_SAMPLE_RATE, harmonics: int = NSF_HARMONICS):
        super().__init__()
        self.source_sr = source_sr
        self.harmonics = harmonics
        self.l_linear = nn.Linear(harmonics, 1)
        self.l_tanh = nn.Tanh()
        self.reference_phase = False
        """True: when no `phase` is given, reproduce so-vits-svc's float32 per-sample phase
        (bit-compatible with the reference on CPU) instead of the exact per-frame phase."""

    def sines(self, f0: torch.Tensor, hop: int, phase: torch.Tensor | None = None,
              rand_ini: torch.Tensor | None = None, sine_noise: torch.Tensor | None = None) -> torch.Tensor:
        """The 9 noisy sine components [B, T*hop, 9] before merging."""
        with torch.no_grad():
            b, t = f0.shape
            if phase is None and rand_ini is None:
                rand_ini = torch.rand(b, self.harmonics, device=f0.device)
            if phase is None and self.reference_phase:
                cycles = reference_sample_phases(f0, hop, rand_ini, self.source_sr, self.harmonics)
            else:
                if phase is None:
                    phase, _ = frame_start_phases(f0, hop, rand_ini=rand_ini, source_sr=self.source_sr,
                                                  harmonics=self.harmonics)
                elif phase.shape != (b, t, self.harmonics):
                    raise ValueError(f"phase must be [B, T, {self.harmonics}] = [{b}, {t}, {self.harmonics}], "
                                     f"got {tuple(phase.shape)}")
                increment = phase_increments(f0, self.source_sr, self.harmonics)
                cycles = sample_phases(phase, increment, hop)
            sines = torch.sin(cycles * 2 * torch.pi) * SINE_AMP
            uv = (f0 > 0).float().repeat_interleave(hop, dim=1).unsqueeze(-1)
            noise_amp = uv * VOICED_NOISE_STD + (1 - uv) * SINE_AMP / 3
            if sine_noise is None:
                sine_noise = torch.randn_like(sines)
            elif sine_noise.shape != sines.shape:
                raise ValueError(f"sine noise must be [B, T*hop, {self.harmonics}] = {list(sines.shape)}, "
                                 f"got {list(sine_noise.shape)}")
            return sines * uv + noise_amp * sine_noise.to(sines.dtype)

    def forward(self, f0: torch.Tensor, hop: int, phase: torch.Tensor | None = None,
                rand_ini: torch.Tensor | None = None, sine_noise: torch.Tensor | None = None) -> torch.Tensor:
        sines = self.sines(f0, hop, phase, rand_ini, sine_noise)
        return self.l_tanh(self.l_linear(sines.to(self.l_linear.weight.dtype)))
