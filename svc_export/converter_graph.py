"""The conversion graph: one exported graph turns one window of audio into converted audio.

Three variants share one synthesis core (docs/bundle.md, "The conversion graph"):

- `ConverterGraph` (role `converter`): 16 kHz audio -> speech encoder + pitch network + salience decoding ->
  synthesis. Every host (Python, streaming, C, CUDA with I/O binding) runs just this.
- `ConverterF0Graph` (role `converter_f0`): the same with the host's F0 track in place of the pitch network
  (classic F0 methods, CREPE with Viterbi, a host's own F0).
- `SynthesisGraph` (role `synthesis`): the second half of `converter_f0`, taking units on the speech
  encoder's grid, so faiss retrieval can sit between the `speech_encoder` graph and this one.

The synthesis core does on the frame grid what so-vits-svc's `infer_tool` does around `infer`: unit
alignment (`repeat_expand_2d`), k-means cluster blend, unvoiced interpolation, pitch shift, volume,
automatic F0 prediction, the NSF phases (40-bit fixed point accumulated in int32 limbs: exact over any
length, no float64, no int64 arithmetic) and the generator. Shapes: B batch, T frames (set by `noise_prior`),
Tu encoder frames, N16 samples at 16 kHz, S speakers, H harmonics, C inter channels, D unit dimensions, K
cluster centres.
"""

from __future__ import annotations

import torch
from torch import nn

from svc_export.graphs import CoarsePitch, DecoderHalves, size_of, speaker_conditioning
from svc_runtime.pitch.decode import LOCAL_RADIUS, fcpe_bin_cents, rmvpe_bin_cents
from svc_runtime.signal.nsf_phase import PHASE_FIXED_POINT_BITS, PHASE_LIMB_BITS, PHASE_LIMBS
from svc_train.models.nsf_source import phase_increments
from svc_train.models.pitch import f0_to_lf0, lf0_to_f0, normalize_lf0

PHASE_ONE = 1 << PHASE_FIXED_POINT_BITS
"""One cycle in the fixed point of carried phases (the int64 value the int32 limbs stand for)."""


# --------------------------------------------------------------------------- frame-grid helpers


def nearest_columns(n_in: torch.Tensor, n_out: torch.Tensor, out_like: torch.Tensor) -> torch.Tensor:
    """torch `F.interpolate(mode="nearest")` source index of each of `n_out` frames: [n_out] int64.

    floor(i * float32(n_in) / float32(n_out)), clipped, in float32 exactly as
    `svc_runtime.signal.f0.nearest_indices` (identity and halving included).
    """
    scale = n_in.to(torch.float32) / n_out.to(torch.float32)
    i = torch.arange(size_of(out_like, -1), device=out_like.device).to(torch.float32)
    return torch.minimum(torch.floor(i * scale).to(torch.int64), n_in - 1)


def left_columns(n_in: torch.Tensor, n_out: torch.Tensor, out_like: torch.Tensor) -> torch.Tensor:
    """so-vits-svc `repeat_expand_2d_left` source index of each of `n_out` frames: [n_out] int64.

    Frame i takes the last source frame j whose bound float32(j * n_out) / float32(n_in) is <= i
    (`svc_runtime.signal.units.left_indices` for n_out >= n_in, the case of every 4.1 model):
    the integer estimate floor(i * n_in / n_out) corrected by one either way for float32 rounding.
    """
    i = torch.arange(size_of(out_like, -1), device=out_like.device)
    guess = (i * n_in) // n_out
    n_in_f = n_in.to(torch.float32)

    def bound(j: torch.Tensor) -> torch.Tensor:
        return (j * n_out).to(torch.float32) / n_in_f

    i_f = i.to(torch.float32)
    column = guess + (bound(guess + 1) <= i_f).to(torch.int64) - (bound(guess) > i_f).to(torch.int64)
    return torch.minimum(torch.clamp(column, min=0), n_in - 1)


def align_columns(mode: str, n_in: torch.Tensor, n_out: torch.Tensor, out_like: torch.Tensor) -> torch.Tensor:
    if mode == "nearest":
        return nearest_columns(n_in, n_out, out_like)
    if mode == "left":
        return left_columns(n_in, n_out, out_like)
    raise ValueError(f"unit_interpolate_mode {mode!r} has no graph form; use 'nearest' or 'left'")


def fill_unvoiced(f0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """so-vits-svc's unvoiced interpolation: f0 [B, T] Hz (0 = unvoiced) -> (filled [B, T], uv [B, T] float32).

    Unvoiced frames between voiced ones are linearly interpolated, frames before the first / after the last
    voiced frame take its value, an item without voiced frames stays 0 (`svc_runtime.signal.f0.interpolate_unvoiced`).
    The k-th voiced frame of each item is found with a scatter over voiced counts (no loops, no float64).
    """
    voiced = f0 > 0
    uv = voiced.to(torch.float32)
    ones = torch.ones_like(f0, dtype=torch.int64)
    count = torch.cumsum(voiced.to(torch.int64), dim=1)  # voiced frames up to and including t
    total = count[:, -1:]
    t = torch.cumsum(ones, dim=1) - 1
    spare = ones * size_of(f0, 1)
    slot = torch.where(voiced, count - 1, spare)  # unvoiced frames all write the spare slot T
    kth = torch.zeros_like(torch.cat([t, t[:, :1]], dim=1)).scatter(1, slot, t)
    prev_k = torch.clamp(count - 1, min=0)
    next_k = torch.minimum(torch.where(voiced, count - 1, count), torch.clamp(total - 1, min=0))
    prev_t = torch.gather(kth, 1, prev_k)
    next_t = torch.gather(kth, 1, next_k)
    has_prev = count > 0
    has_next = count < total
    prev_f = torch.gather(f0, 1, prev_t)
    next_f = torch.gather(f0, 1, next_t)
    span = torch.clamp(next_t - prev_t, min=1).to(torch.float32)
    slope = (next_f - prev_f) / span
    between = slope * (t - prev_t).to(torch.float32) + prev_f
    filled = torch.where(has_prev & has_next, between, torch.where(has_prev, prev_f, next_f))
    filled = torch.where(voiced, f0, filled)
    filled = torch.where(total > 0, filled, torch.zeros_like(f0))
    return filled, uv


def volume_frames(audio: torch.Tensor, hop: int, frames_like: torch.Tensor) -> torch.Tensor:
    """so-vits-svc `Volume_Extractor`: audio [B, T*hop] -> RMS per frame [B, T] (reflect padding)."""
    power = (audio * audio).unsqueeze(1)
    padded = torch.nn.functional.pad(power, (hop // 2, (hop + 1) // 2), mode="reflect")[:, 0]
    frames = padded[:, : size_of(frames_like, -1) * hop]
    return torch.sqrt(frames.reshape(size_of(audio, 0), -1, hop).mean(dim=-1))


DIGIT_BITS = PHASE_LIMB_BITS // 2
"""Inside the graph each 14-bit limb is summed as two 7-bit digits: a window's digit sums stay <= 2^24."""
DIGIT_WIDTHS = (DIGIT_BITS,) * (2 * PHASE_LIMBS - 1) + (PHASE_FIXED_POINT_BITS - (2 * PHASE_LIMBS - 1) * DIGIT_BITS,)
"""Bits of the 40-bit phase's digits, low first: five of 7 bits and a top one of 5."""


def _carry(digits: list[torch.Tensor]) -> list[torch.Tensor]:
    """Normalise non-negative int32 digits (low first) to `DIGIT_WIDTHS` (mod 2^40 overall). A carry is a
    truncating Div by a power of two, the digit what the multiply and subtract leave."""
    out, carry = [], None
    for digit, bits in zip(digits, DIGIT_WIDTHS):
        if carry is not None:
            digit = digit + carry
        carry = torch.div(digit, 1 << bits, rounding_mode="trunc")
        out.append(digit - carry * (1 << bits))
    return out


def increment_digits(increment: torch.Tensor) -> list[torch.Tensor]:
    """floor(increment * 2^40) of float32 increments in [0, 1) as int32 digits, low first, exactly in float32:
    each step scales by a power of two (exact), takes the floor (exact) and keeps the remainder (exact: the
    fraction of a float32 is a float32)."""
    rest, digits = increment, []
    for bits in DIGIT_WIDTHS[::-1]:
        scaled = rest * float(1 << bits)
        whole = torch.floor(scaled)
        digits.append(whole.to(torch.int32))
        rest = scaled - whole
    return digits[::-1]


def limbs_to_digits(limbs: torch.Tensor) -> list[torch.Tensor]:
    """Limbs [B, 3, H] (14 bits each) -> 6 digits [B, H] of 7 bits, low first."""
    digits = []
    for k in range(PHASE_LIMBS):
        limb = limbs[:, k]
        high = torch.div(limb, 1 << DIGIT_BITS, rounding_mode="trunc")
        digits += [limb - high * (1 << DIGIT_BITS), high]
    return digits


def digits_to_limbs(digits: list[torch.Tensor]) -> torch.Tensor:
    """Normalised digits, low first -> limbs stacked on axis 1 ([B, 3, H] for digits [B, H])."""
    return torch.stack([digits[2 * k] + digits[2 * k + 1] * (1 << DIGIT_BITS) for k in range(PHASE_LIMBS)], dim=1)


def digits_to_float(digits: list[torch.Tensor]) -> torch.Tensor:
    """Normalised digits -> float32 cycles, rounded once as float32(value) * 2^-40 would be: the 40-bit value is
    split into bits 16..39 and bits 0..15, each exact in float32, whose sum the one float32 addition rounds
    correctly."""
    d0, d1, d2, d3, d4, d5 = digits
    d2_high = torch.div(d2, 4, rounding_mode="trunc")  # bits 16..20 of the value
    high = ((d5 * (1 << DIGIT_BITS) + d4) * (1 << DIGIT_BITS) + d3) * (1 << (DIGIT_BITS - 2)) + d2_high  # < 2^24
    low = ((d2 - d2_high * 4) * (1 << DIGIT_BITS) + d1) * (1 << DIGIT_BITS) + d0  # < 2^16
    return high.to(torch.float32) * 2.0 ** (16 - PHASE_FIXED_POINT_BITS) + low.to(torch.float32) * 2.0 ** -PHASE_FIXED_POINT_BITS


def frame_phases(f0: torch.Tensor, hop: int, source_sr: float, harmonics: int, phase_in: torch.Tensor,
                 state_frame: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """NSF start phase of every frame and the carried phase of frame `state_frame`, exactly, in int32.

    f0 [B, T] Hz, T <= PHASE_MAX_FRAMES; phase_in [B, 3, H] int32 limbs of cycles * 2^40 before frame 0
    (`svc_runtime.signal.nsf_phase.PHASE_LIMBS`); state_frame [B] int64 in [0, T]. Returns (phases [B, T, H]
    float32 cycles, phase_out [B, 3, H] int32 limbs). Each frame advances by frac(hop * increment) with the
    reference's float32 increment, a multiple of 2^-40 cycles, so the sums are exact and a run split anywhere
    gives the same phases bit for bit (`svc_runtime.signal.nsf_phase.frame_start_phases` does it in float64).

    The sums run on 7-bit digits, so no integer in the graph exceeds 2^24: OpenVINO's CPU plugin computes
    int32 Add, Sub, Mul and CumSum exactly but Div and Mod through float32, exact only up to 2^24. Bounds:
    digits < 2^7, times hop < 2^10 is < 2^17; summed over T < 2^17 frames with the carried digit, at most
    (2^17 - 1) * (2^7 - 1) + 2^7 - 1 = 2^24 - 2^17, and with an incoming carry (< 2^17) still below 2^24.
    """
    if hop >= 1 << 10:
        raise ValueError(f"hop {hop} is too large for the phase accumulator (at most 1023 samples)")
    increment = phase_increments(f0, source_sr, harmonics)
    advance = _carry([digit * hop for digit in increment_digits(increment)])  # frac(hop * increment) [B, T, H]
    start = [d.unsqueeze(1) for d in limbs_to_digits(phase_in)]  # [B, 1, H] each
    running = [torch.cumsum(a, dim=1, dtype=torch.int32) for a in advance]  # [B, T, H], < 2^24
    phases = digits_to_float(_carry([s + r - a for s, r, a in zip(start, running, advance)]))
    index = state_frame.reshape(-1, 1, 1).expand(-1, 1, harmonics)
    carried = []
    for s, r in zip(start, running):
        with_zero = torch.cat([torch.zeros_like(r[:, :1]), r], dim=1)  # [B, T + 1, H]
        carried.append(s[:, 0] + torch.gather(with_zero, 1, index)[:, 0])
    return phases, digits_to_limbs(_carry(carried))


class FilledF0(nn.Module):
    """Raw F0 [B, T] + pitch factor [B] -> (F0 the generator uses [B, T], uv [B, T]): `fill_unvoiced`, scaled.
    A module so its nodes carry a scope name (`/f0_track/`) that fp16 graphs keep in fp32."""

    def forward(self, f0_raw: torch.Tensor, f0_scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f0, uv = fill_unvoiced(f0_raw)
        return f0 * f0_scale.unsqueeze(1), uv


class AutoF0(nn.Module):
    """so-vits-svc's automatic F0: the F0 decoder on the encoder input and the normalised log-F0 -> F0 [B, T].
    A module so its nodes carry a scope (`/auto_f0/`) that `svc_export.auto_f0_branch` turns into an `If`
    branch that runs only when asked."""

    def __init__(self, f0_decoder: nn.Module):
        super().__init__()
        self.f0_decoder = f0_decoder

    def forward(self, x, f0, uv, x_mask, g):
        norm_lf0 = normalize_lf0(f0_to_lf0(f0), x_mask, uv, random_scale=False)
        return lf0_to_f0(self.f0_decoder(x, norm_lf0, x_mask, spk_emb=g))


class PhaseTrack(nn.Module):
    """`frame_phases` as a module (scope `/phase_track/`, kept in fp32 and int32 by fp16 graphs)."""

    def __init__(self, hop: int, source_sr: float, harmonics: int):
        super().__init__()
        self.hop, self.source_sr, self.harmonics = hop, source_sr, harmonics

    def forward(self, f0: torch.Tensor, phase_in: torch.Tensor, state_frame: torch.Tensor):
        return frame_phases(f0, self.hop, self.source_sr, self.harmonics, phase_in, state_frame)


# --------------------------------------------------------------------------- pitch


class SalienceToF0(nn.Module):
    """Pitch-network salience [B, F, bins] -> F0 [B, F] Hz (0 = unvoiced), as `svc_runtime.pitch.decode`.

    rmvpe: salience-weighted mean cents of the 9 bins around the argmax (window cut at the range ends),
    voiced when the window's largest salience exceeds `threshold`. fcpe (local_argmax): the same with
    clamped indices, voiced when the frame's largest salience exceeds `threshold`, then so-vits-svc's
    range: below f0_min unvoiced, above f0_max clamped.
    """

    def __init__(self, method: str, n_bins: int, threshold: float,
                 bins_range: tuple[float, float] | None = None, post_range: tuple[float, float] | None = None):
        super().__init__()
        if method not in ("rmvpe", "fcpe"):
            raise ValueError(f"pitch method {method!r} has no in-graph decoder (rmvpe, fcpe); use the converter_f0 graph")
        self.method = method
        self.threshold = float(threshold)
        table = rmvpe_bin_cents(n_bins) if method == "rmvpe" else fcpe_bin_cents(n_bins, bins_range)
        self.register_buffer("cents", torch.tensor(table, dtype=torch.float32), persistent=False)
        self.post_range = post_range if method == "fcpe" else None

    def forward(self, salience: torch.Tensor) -> torch.Tensor:
        n_bins = salience.shape[-1]
        peak = torch.argmax(salience, dim=-1, keepdim=True)
        offsets = torch.arange(-LOCAL_RADIUS, LOCAL_RADIUS + 1, device=salience.device)
        window = peak + offsets
        clamped = torch.clamp(window, 0, n_bins - 1)
        weights = torch.gather(salience, -1, clamped)
        if self.method == "rmvpe":
            weights = weights * ((window >= 0) & (window < n_bins)).to(weights.dtype)
            voiced = weights.max(dim=-1).values > self.threshold
        else:
            voiced = salience.max(dim=-1).values > self.threshold
        cents = (weights * self.cents[clamped]).sum(dim=-1) / weights.sum(dim=-1)
        cents = torch.where(voiced, cents, torch.zeros_like(cents))
        f0 = torch.where(voiced, 10.0 * torch.pow(2.0, cents / 1200.0), torch.zeros_like(cents))
        if self.post_range is not None:
            low, high = self.post_range
            f0 = torch.where(f0 < low, torch.zeros_like(f0), torch.clamp(f0, max=high))
        return f0


class PitchTrack(nn.Module):
    """wav16k [B, N16] -> raw F0 [B, T] on the frame grid: network, decoder, nearest resize (`repeat_expand`)."""

    def __init__(self, network: nn.Module, decoder: SalienceToF0):
        super().__init__()
        self.network = network
        self.decoder = decoder

    def forward(self, wav16k: torch.Tensor, frames_like: torch.Tensor) -> torch.Tensor:
        f0 = self.decoder(self.network(wav16k))
        columns = nearest_columns(size_of(f0, 1), size_of(frames_like, -1), frames_like)
        return f0[:, columns]


# --------------------------------------------------------------------------- synthesis core


class SynthesisCore(nn.Module):
    """Units on the encoder grid + raw F0 on the frame grid -> audio, as so-vits-svc's `infer_tool` + `infer`.

    forward(units [B, D, Tu], f0_raw [B, T], speaker [B, T, S], f0_scale [B], noise_scale [1],
    noise_prior [B, C, T], sine_noise [B, T*hop, H], phase_in [B, 3, H] int32, state_frame [B] int64,
    cluster_centres [K, D], cluster_ratio [1], decode_from [1] int64, audio [B, T*hop] or None, auto_f0 [1] or None)
    -> (audio [B, 1, (T - decode_from)*hop], f0 [B, T], uv [B, T], phase_out [B, 3, H] int32).
    Everything before the decoder sees the whole window; the decoder (most of the cost) only frames
    [decode_from, T), which whole-file hosts set to 0 and live hosts to their new frames plus a margin.
    """

    def __init__(self, synthesizer: nn.Module, unit_mode: str):
        super().__init__()
        self.synthesizer = synthesizer
        self.coarse_pitch = CoarsePitch()
        self.unit_mode = unit_mode
        self.hop = int(synthesizer.hop)
        self.f0_track = FilledF0()
        self.auto_f0 = AutoF0(synthesizer.f0_decoder) if synthesizer.use_automatic_f0_prediction else None
        self.phase_track = PhaseTrack(self.hop, float(synthesizer.dec.m_source.source_sr),
                                      int(synthesizer.dec.m_source.harmonics))
        self.decode = DecoderHalves(synthesizer.dec)

    @staticmethod
    def cluster_blend(units: torch.Tensor, centres: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
        """Each unit column moved towards its nearest k-means centre (squared Euclidean): [B, D, Tu]."""
        x = units.transpose(1, 2)  # [B, Tu, D]
        distance = (centres * centres).sum(dim=-1) - 2.0 * torch.matmul(x, centres.t())  # [B, Tu, K]
        nearest = centres[torch.argmin(distance, dim=-1)]  # [B, Tu, D]
        return (ratio * nearest + (1.0 - ratio) * x).transpose(1, 2)

    def forward(self, units, f0_raw, speaker, f0_scale, noise_scale, noise_prior, sine_noise, phase_in,
                state_frame, cluster_centres, cluster_ratio, decode_from, audio=None, auto_f0=None):
        model = self.synthesizer
        units = self.cluster_blend(units, cluster_centres, cluster_ratio)
        columns = align_columns(self.unit_mode, size_of(units, -1), size_of(noise_prior, -1), noise_prior)
        c = units[:, :, columns]
        f0, uv = self.f0_track(f0_raw, f0_scale)
        vol = volume_frames(audio, self.hop, noise_prior) if audio is not None else None
        g = speaker_conditioning(speaker, model.emb_g)
        x_mask = torch.ones_like(f0).unsqueeze(1)
        x = model._encoder_input(c, uv, x_mask, vol)
        if auto_f0 is not None:
            f0 = torch.where(auto_f0 > 0.5, self.auto_f0(x, f0, uv, x_mask, g), f0)
        z_p, _, _, _ = model.enc_p(x, x_mask, self.coarse_pitch(f0), noise_scale=noise_scale, noise=noise_prior)
        z = model.flow(z_p, x_mask, g=g, reverse=True)
        phases, phase_out = self.phase_track(f0, phase_in, state_frame)
        # the decoder runs on frames [decode_from, T) only (a live host's new frames and their left context)
        start = torch.clamp(decode_from[0], min=0, max=size_of(f0, 1) - 1)
        wave = self.decode((z * x_mask)[:, :, start:], f0[:, start:], g[:, :, start:], phases[:, start:],
                           sine_noise[:, start * self.hop :])
        return wave, f0, uv, phase_out


class SynthesisGraph(nn.Module):
    """Role `synthesis`: (units [B, D, Tu], f0 [B, T], speaker, f0_scale, noise_scale, noise_prior, sine_noise,
    phase_in, state_frame, cluster_centres, cluster_ratio, decode_from[, audio][, auto_f0]) -> (audio, f0, uv,
    phase_out)."""

    def __init__(self, core: SynthesisCore, with_audio: bool, with_auto_f0: bool):
        super().__init__()
        self.core = core
        self.with_audio = with_audio
        self.with_auto_f0 = with_auto_f0

    def forward(self, units, f0, speaker, f0_scale, noise_scale, noise_prior, sine_noise, phase_in, state_frame,
                cluster_centres, cluster_ratio, decode_from, *extra):
        audio, auto_f0 = _extras(extra, self.with_audio, self.with_auto_f0)
        return self.core(units, f0, speaker, f0_scale, noise_scale, noise_prior, sine_noise, phase_in, state_frame,
                         cluster_centres, cluster_ratio, decode_from, audio, auto_f0)


class ConverterF0Graph(nn.Module):
    """Role `converter_f0`: (wav16k [B, N16], f0 [B, T], speaker, ...) -> as `SynthesisGraph`, encoder inside."""

    def __init__(self, encoder: nn.Module, core: SynthesisCore, with_audio: bool, with_auto_f0: bool):
        super().__init__()
        self.encoder = encoder
        self.core = core
        self.with_audio = with_audio
        self.with_auto_f0 = with_auto_f0

    def forward(self, wav16k, f0, speaker, f0_scale, noise_scale, noise_prior, sine_noise, phase_in, state_frame,
                cluster_centres, cluster_ratio, decode_from, *extra):
        audio, auto_f0 = _extras(extra, self.with_audio, self.with_auto_f0)
        units = self.encoder(wav16k)
        return self.core(units, f0, speaker, f0_scale, noise_scale, noise_prior, sine_noise, phase_in, state_frame,
                         cluster_centres, cluster_ratio, decode_from, audio, auto_f0)


class ConverterGraph(nn.Module):
    """Role `converter`: (wav16k [B, N16], speaker, f0_scale, ...) -> as `SynthesisGraph`, encoder and pitch inside."""

    def __init__(self, encoder: nn.Module, pitch: PitchTrack, core: SynthesisCore, with_audio: bool,
                 with_auto_f0: bool):
        super().__init__()
        self.encoder = encoder
        self.pitch = pitch
        self.core = core
        self.with_audio = with_audio
        self.with_auto_f0 = with_auto_f0

    def forward(self, wav16k, speaker, f0_scale, noise_scale, noise_prior, sine_noise, phase_in, state_frame,
                cluster_centres, cluster_ratio, decode_from, *extra):
        audio, auto_f0 = _extras(extra, self.with_audio, self.with_auto_f0)
        units = self.encoder(wav16k)
        f0 = self.pitch(wav16k, noise_prior)
        return self.core(units, f0, speaker, f0_scale, noise_scale, noise_prior, sine_noise, phase_in, state_frame,
                         cluster_centres, cluster_ratio, decode_from, audio, auto_f0)


def _extras(extra: tuple, with_audio: bool, with_auto_f0: bool):
    """The optional trailing inputs, in the order the plans declare them: audio (vol models), auto_f0."""
    values = list(extra)
    audio = values.pop(0) if with_audio else None
    auto_f0 = values.pop(0) if with_auto_f0 else None
    return audio, auto_f0
