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


# --- The later stages of the NSF-HiFiGAN decoder as two overlapping halves on the batch axis.
# Why: ONNX Runtime's CPU convolution (MLAS, NCHWc) deals a convolution out to threads in work units of
# batch x groups x ceil(out_channels / 64) x output rows. Our 1-D convolutions run as 2-D with one row, so
# every convolution with <= 64 output channels (HiFiGAN's last three upsampling stages at the standard size,
# about 30 % of the generator's time) is one unit on one thread, and one of two cores idles
# (`benchmarks/ort_partition.py`). From the first such stage on, the decoder runs two halves of the window
# on the batch axis: two units for every convolution.
#
# The stages are local, and the later ones reach little: an output sample depends on stage inputs less than
# a frame away at the standard size (`decoder_reach_frames(dec, first)`). Each half carries `halo` frames of
# real input past the cut, so the samples kept from each half are those of the whole decode (the same
# arithmetic, up to convolution blocking). A batch of windows is not split: every unit has a partner already.
MLAS_FILTER_SET = 64
"""Output channels per MLAS NCHWc convolution work unit on AVX-512 (16-float blocks x 4-block filter sets)."""
HALO_MARGIN_FRAMES = 1
"""Frames of halo beyond the computed reach (rounding of fractional reaches, padding asymmetries)."""
MIN_FRAMES_PER_HALO = 8
"""A window is split from `MIN_FRAMES_PER_HALO * halo` frames on (16 at the standard size): below that the
halo's extra work outweighs the second core's share."""


def _conv_reach(module: nn.Module) -> float:
    """One-sided reach, in input samples, of the convolutions and anti-aliased activations inside `module`
    applied in sequence (an upper bound when they run in parallel)."""
    reach = 0.0
    for part in module.modules():
        if isinstance(part, nn.Conv1d):
            reach += (part.kernel_size[0] - 1) * part.dilation[0] / 2 / part.stride[0]
        elif isinstance(part, nn.ConvTranspose1d):
            reach += math.ceil(part.kernel_size[0] / part.stride[0])
        elif hasattr(part, "upsample") and hasattr(part, "downsample"):
            reach += 8  # SnakeAlias: 12-tap up and down filters at twice the rate, ~3.5 input samples each
    return reach


def first_split_stage(dec: nn.Module) -> int | None:
    """The first upsampling stage whose convolutions have <= MLAS_FILTER_SET output channels (None: none)."""
    for i, up in enumerate(dec.ups):
        if up.out_channels <= MLAS_FILTER_SET:
            return i
    return None


def decoder_reach_frames(dec: nn.Module, first: int = 0) -> float:
    """How many frames either side of an output sample the decoder's input to stage `first` can change it
    (`NsfHifiGan` and `NsfSnakeHifiGan`; first = 0 counts conv_pre too): per stage the activation and
    transposed convolution at the rate before, the largest residual block at the rate after, the source's
    strided convolution at the sample rate; then conv_post."""
    reach = _conv_reach(dec.conv_pre) if first == 0 else 0.0
    rate = math.prod(up.stride[0] for up in dec.ups[:first])  # samples per frame at the stage's input
    for i in range(first, len(dec.ups)):
        up = dec.ups[i]
        reach += (_conv_reach(up) + (_conv_reach(dec.snakes[i]) if dec.snakes is not None else 0.0)) / rate
        rate *= up.stride[0]
        blocks = dec.resblocks[i * dec.num_kernels:(i + 1) * dec.num_kernels]
        reach += max(_conv_reach(block) for block in blocks) / rate
        reach += _conv_reach(dec.noise_convs[i]) / dec.hop
    post = [dec.conv_post] + ([dec.snake_post] if dec.snake_post is not None else [])
    return reach + sum(_conv_reach(m) for m in post) / rate


class DecoderHalves(nn.Module):
    """dec(x [B, C, T], f0 [B, T], g [B, G, T], phase [B, T, H], sine_noise [B, T*hop, H]) -> [B, 1, T*hop],
    as `dec` itself, with the stages from `first` on run as two overlapping halves for a single window of
    >= `min_frames` frames."""

    def __init__(self, dec: nn.Module):
        super().__init__()
        self.dec = dec
        self.hop = int(dec.hop)
        self.first = first_split_stage(dec)
        first = len(dec.ups) if self.first is None else self.first
        self.rate = math.prod(up.stride[0] for up in dec.ups[:first])  # samples per frame entering `first`
        self.halo = math.ceil(decoder_reach_frames(dec, first)) + HALO_MARGIN_FRAMES
        self.min_frames = MIN_FRAMES_PER_HALO * self.halo

    def forward(self, x, f0, g, phase, sine_noise):
        dec = self.dec
        if self.first is None:  # no stage of <= 64 channels: nothing to gain
            return dec(x, f0, g, phase=phase, sine_noise=sine_noise)
        source = dec.source(f0, phase=phase, sine_noise=sine_noise)  # [B, 1, T*hop]
        h = dec.head(x, g)
        for i in range(self.first):
            h = dec.stage(i, h, source)

        # sizes from f0, not x: the source's pieces depend on the F0 track alone, not on the encoder path
        batch, frames = size_of(f0, 0), size_of(f0, 1)
        split = ((batch == 1) & (frames >= self.min_frames)).to(torch.int64)
        pieces = 1 + split
        # each piece is `length` frames; piece k starts at frame k * (frames - length)
        length = frames + split * ((frames + 1) // 2 + self.halo - frames)
        offset = frames - length
        columns = torch.arange(pieces, device=f0.device)[:, None] * offset + torch.arange(length, device=f0.device)

        def stack(t: torch.Tensor, rate: int) -> torch.Tensor:
            """[B, C, T * rate] -> [B * pieces, C, length * rate]: the pieces' samples, batch-major."""
            index = (columns[:, :, None] * rate + torch.arange(rate, device=f0.device)).reshape(-1)
            picked = t.index_select(2, index)
            return picked.reshape(size_of(t, 0), size_of(t, 1), pieces, -1).transpose(1, 2).flatten(0, 1)

        h, source = stack(h, self.rate), stack(source, self.hop)
        for i in range(self.first, dec.num_upsamples):
            h = dec.stage(i, h, source)
        wave = dec.tail(h)  # [B * pieces, 1, length * hop]
        # sample i of the window: piece 0 before the cut frame, piece 1 (shifted by its offset) from it on
        cut = frames - split * (frames // 2)
        i = torch.arange(frames * self.hop, device=f0.device)
        second = (i >= cut * self.hop).to(torch.int64)
        source_index = i + second * (length * self.hop - offset * self.hop)
        return wave.reshape(batch, -1).index_select(1, source_index).unsqueeze(1)


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
