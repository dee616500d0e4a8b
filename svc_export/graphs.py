"""Export-ready wrappers: each takes only tensors (every random term an input) and
returns only tensors, in the order the bundle's graphs declare them.

Shapes: B batch, T frames of the generator grid, S speakers, H = 9 NSF sine
components, N samples.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from svc_train.models.pitch import f0_to_coarse, f0_to_lf0, lf0_to_f0, normalize_lf0
from svc_train.weight_norm import fold_module as strip_weight_norm  # noqa: F401 - svc_train's one fold, used by exporter


def size_of(x: torch.Tensor, dim: int) -> torch.Tensor:
    """The size of `x` along `dim` as an int64 tensor (a Shape node when exported, so it stays dynamic)."""
    return torch._shape_as_tensor(x)[dim]


def speaker_conditioning(speaker: torch.Tensor, emb_g: nn.Embedding) -> torch.Tensor:
    """Per-frame speaker embedding [B, gin, T] from speaker weights [B, T, S].

    One-hot weights give exactly `emb_g(sid)` on every frame; other weights give the
    weighted sum of the speakers' embeddings frame by frame (so-vits-svc's speaker mix).
    """
    return torch.matmul(speaker, emb_g.weight).transpose(1, 2)


class CoarsePitch(nn.Module):
    """f0 [B, T] Hz -> coarse pitch bins [B, T] int64 (a module so that its nodes carry a scope
    name, `/coarse_pitch/`, which the fp16 conversion keeps in fp32: a bin must not move)."""

    def forward(self, f0):
        return f0_to_coarse(f0)


# --- The NSF-HiFiGAN decoder of one long window as two overlapping halves on the batch axis.
# Why: ONNX Runtime's CPU convolution (MLAS, NCHWc) deals a convolution out to threads in work units of
# batch x groups x ceil(out_channels / 64) x output rows. Our 1-D convolutions run as 2-D with one row, so
# every convolution with <= 64 output channels (HiFiGAN's last three upsampling stages, about 30 % of the
# generator's time at the standard size) is one unit on one thread, and one of two cores idles
# (`benchmarks/ort_partition.py`). Two halves on the batch axis make two units of every convolution.
#
# The decoder is local: an output sample depends on input frames at most `decoder_reach_frames` away. Each
# half carries `halo` >= that many real frames past the cut, so the samples kept from each half are the
# samples of the whole-window decode (the same arithmetic, up to convolution blocking). Only a single window
# (batch 1) of at least `min_frames` frames is split; batches of windows already give every unit a partner,
# and short windows (live blocks) would spend more on the halo than the second core returns.
HALO_MARGIN_FRAMES = 2
"""Frames of halo beyond the computed reach (rounding of fractional reaches, padding asymmetries)."""
MIN_FRAMES_PER_HALO = 8
"""A window is split from `MIN_FRAMES_PER_HALO * halo` frames on: below that the halo's extra work (2 halo
frames of decoding) outweighs the second core's share (~30 % of the decoder's time, measured at the
standard size, 2 threads: even at 8.6 halos (1.7 s), 1.14x at 12 halos, 1.16x at 18)."""


def _conv_reach(module: nn.Module) -> float:
    """One-sided reach, in input samples, of the stride-1 convolutions and anti-aliased activations inside
    `module` applied in sequence (an upper bound when they run in parallel)."""
    reach = 0.0
    for part in module.modules():
        if isinstance(part, nn.Conv1d):
            reach += (part.kernel_size[0] - 1) * part.dilation[0] / 2 / part.stride[0]
        elif isinstance(part, nn.ConvTranspose1d):
            reach += math.ceil(part.kernel_size[0] / part.stride[0])
        elif hasattr(part, "upsample") and hasattr(part, "downsample"):
            reach += 8  # SnakeAlias: 12-tap up and down filters at twice the rate, ~3.5 input samples each
    return reach


def decoder_reach_frames(dec: nn.Module) -> float:
    """How many input frames either side of an output sample can change it, for `NsfHifiGan` and
    `NsfSnakeHifiGan`: conv_pre, then per upsampling stage the transposed convolution (at the rate before)
    and the largest residual block plus the stage activation (at the rate after), then conv_post."""
    reach = _conv_reach(dec.conv_pre)
    rate = 1  # samples per frame at the current stage
    for i, up in enumerate(dec.ups):
        reach += _conv_reach(up) / rate
        if dec.snakes is not None:
            reach += _conv_reach(dec.snakes[i]) / rate
        rate *= up.stride[0]
        blocks = dec.resblocks[i * dec.num_kernels:(i + 1) * dec.num_kernels]
        reach += max(_conv_reach(block) for block in blocks) / rate
        reach += _conv_reach(dec.noise_convs[i]) / dec.hop
    post = [dec.conv_post] + ([dec.snake_post] if dec.snake_post is not None else [])
    return reach + sum(_conv_reach(m) for m in post) / rate


class DecoderHalves(nn.Module):
    """dec(x [B, C, T], f0 [B, T], g [B, G, T], phase [B, T, H], sine_noise [B, T*hop, H]) -> [B, 1, T*hop],
    as `dec` itself, with a single window of >= `min_frames` frames decoded as two overlapping halves."""

    def __init__(self, dec: nn.Module):
        super().__init__()
        self.dec = dec
        self.hop = int(dec.hop)
        self.halo = math.ceil(decoder_reach_frames(dec)) + HALO_MARGIN_FRAMES
        self.min_frames = MIN_FRAMES_PER_HALO * self.halo

    def forward(self, x, f0, g, phase, sine_noise):
        batch, frames = size_of(x, 0), size_of(x, 2)
        split = ((batch == 1) & (frames >= self.min_frames)).to(torch.int64)
        pieces = 1 + split
        # each piece is `length` frames; piece k starts at frame k * (frames - length)
        length = frames + split * ((frames + 1) // 2 + self.halo - frames)
        offset = frames - length
        columns = torch.arange(pieces, device=x.device)[:, None] * offset + torch.arange(length, device=x.device)
        samples = (columns[:, :, None] * self.hop + torch.arange(self.hop, device=x.device)).reshape(pieces, -1)

        def stack(t: torch.Tensor, index: torch.Tensor, axis: int) -> torch.Tensor:
            """[B, ..., T, ...] -> [B * pieces, ..., length, ...]: pieces of axis `axis`, batch-major."""
            picked = t.index_select(axis, index.reshape(-1))
            shape = list(picked.shape[:axis]) + [pieces, -1] + list(picked.shape[axis + 1:])
            return picked.reshape(shape).movedim(axis, 1).flatten(0, 1)

        wave = self.dec(stack(x, columns, 2), stack(f0, columns, 1), stack(g, columns, 2),
                        phase=stack(phase, columns, 1), sine_noise=stack(sine_noise, samples, 1))
        # sample i of the window: piece 0 before the cut frame, piece 1 (shifted by its offset) from it on
        cut = frames - split * (frames // 2)
        i = torch.arange(frames * self.hop, device=x.device)
        second = (i >= cut * self.hop).to(torch.int64)
        source = i + second * (length * self.hop - offset * self.hop)
        flat = wave.reshape(batch, -1)
        return flat.index_select(1, source).unsqueeze(1)


class GeneratorGraph(nn.Module):
    """SynthesizerTrn inference with explicit randomness and per-frame speaker weights.

    forward(c [B, ssl_dim, T], f0 [B, T] Hz, uv [B, T], speaker [B, T, S],
    noise_prior [B, inter, T], noise_scale [1], phase [B, T, H] cycles,
    sine_noise [B, T*hop, H], vol [B, T] (only when the model embeds volume))
    -> audio [B, 1, T*hop].
    """

    def __init__(self, synthesizer: nn.Module) -> None:
        super().__init__()
        self.synthesizer = synthesizer
        self.coarse_pitch = CoarsePitch()
        self.decode = DecoderHalves(synthesizer.dec)

    def forward(self, c, f0, uv, speaker, noise_prior, noise_scale, phase, sine_noise, vol=None):
        model = self.synthesizer
        g = speaker_conditioning(speaker, model.emb_g)
        x_mask = torch.ones_like(f0).unsqueeze(1)
        x = model._encoder_input(c, uv, x_mask, vol)
        z_p, _, _, _ = model.enc_p(x, x_mask, self.coarse_pitch(f0), noise_scale=noise_scale, noise=noise_prior)
        z = model.flow(z_p, x_mask, g=g, reverse=True)
        return self.decode(z * x_mask, f0, g, phase, sine_noise)


class F0PredictorGraph(nn.Module):
    """The automatic F0 decoder: forward(c, f0, uv, speaker [B, T, S], vol?) -> f0_pred [B, T] Hz.

    As `infer(..., predict_f0=True)`: log-f0 normalised by its mean over voiced frames,
    decoded, mapped back to Hz (negative values passed on; the source treats them as unvoiced).
    """

    def __init__(self, synthesizer: nn.Module) -> None:
        super().__init__()
        self.synthesizer = synthesizer

    def forward(self, c, f0, uv, speaker, vol=None):
        model = self.synthesizer
        g = speaker_conditioning(speaker, model.emb_g)
        x_mask = torch.ones_like(f0).unsqueeze(1)
        x = model._encoder_input(c, uv, x_mask, vol)
        norm_lf0 = normalize_lf0(f0_to_lf0(f0), x_mask, uv, random_scale=False)
        pred_lf0 = model.f0_decoder(x, norm_lf0, x_mask, spk_emb=g)
        return lf0_to_f0(pred_lf0)


class WaveformGraph(nn.Module):
    """A module on a waveform [B, N] (speech encoder -> units [B, dim, frames], pitch -> salience)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, wav):
        return self.module(wav)


class CrepeFraming(nn.Module):
    """CREPE's framing and per-frame normalisation, audio [B, N] -> frames [B, N // 160 + 1, 1024]
    (a module so that its nodes carry a scope name, `/framing/`, which fp16 graphs keep in fp32:
    a frame's std can be far below fp16's range)."""

    def forward(self, audio):
        from svc_train.pitch.crepe import normalised_frames

        return normalised_frames(audio)


class CrepeGraph(nn.Module):
    """`CrepeFromAudio` for export: forward(audio [B, N] 16 kHz) -> probabilities [B, N // 160 + 1, 360]."""

    def __init__(self, crepe_from_audio: nn.Module) -> None:
        super().__init__()
        self.framing = CrepeFraming()
        self.network = crepe_from_audio.network

    def forward(self, audio):
        frames = self.framing(audio)
        batch, n_frames, window = frames.shape
        return self.network(frames.reshape(batch * n_frames, window)).reshape(batch, n_frames, -1)
