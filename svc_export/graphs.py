"""Export-ready wrappers: each takes only tensors (every random term an input) and
returns only tensors, in the order the bundle's graphs declare them.

Shapes: B batch, T frames of the generator grid, S speakers, H = 9 NSF sine
components, N samples.
"""

from __future__ import annotations

import torch
from torch import nn

from svc_train.models.pitch import f0_to_coarse, f0_to_lf0, lf0_to_f0, normalize_lf0
from svc_train.weight_norm import fold_module as strip_weight_norm  # noqa: F401 - svc_train's one fold, used by exporter


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

    def forward(self, c, f0, uv, speaker, noise_prior, noise_scale, phase, sine_noise, vol=None):
        model = self.synthesizer
        g = speaker_conditioning(speaker, model.emb_g)
        x_mask = torch.ones_like(f0).unsqueeze(1)
        x = model._encoder_input(c, uv, x_mask, vol)
        z_p, _, _, _ = model.enc_p(x, x_mask, self.coarse_pitch(f0), noise_scale=noise_scale, noise=noise_prior)
        z = model.flow(z_p, x_mask, g=g, reverse=True)
        return model.dec(z * x_mask, f0, g, phase=phase, sine_noise=sine_noise)


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
