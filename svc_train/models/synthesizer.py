"""SynthesizerTrn: the so-vits-svc 4.1 generator (training forward and inference).

State-dict keys, parameter order and numerics follow so-vits-svc 4.1, so its `G_*.pth`
files load unchanged and ours load there. Inference takes its three random terms as
explicit inputs (`GeneratorNoiseTensors`), so a conversion is reproducible and exportable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from svc_runtime.signal.nsf_phase import NSF_HARMONICS, NSF_SOURCE_SAMPLE_RATE
from svc_train.config import ModelConfig, SvcConfig
from svc_train.models.encoders import PosteriorEncoder, TextEncoder
from svc_train.models.f0_decoder import F0Decoder
from svc_train.models.flows import ResidualCouplingBlock, TransformerCouplingBlock
from svc_train.models.modules import sequence_mask
from svc_train.models.nsf_hifigan import NsfHifiGan
from svc_train.models.pitch import f0_to_coarse, f0_to_lf0, lf0_to_f0, normalize_lf0

NOISE_KEYS = ("prior", "rand_ini", "sine")


@dataclass(frozen=True)
class GeneratorNoiseTensors:
    """The random terms of one inference call.

    prior: [B, inter_channels, T] standard normal (scaled by exp(logs_p) * noise_scale);
    rand_ini: [B, 9] initial phases of the NSF sines in cycles (element 0 ignored);
    sine: [B, T*hop, 9] standard normal (scaled by the voiced/unvoiced noise amplitude).
    """

    prior: torch.Tensor
    rand_ini: torch.Tensor
    sine: torch.Tensor

    @staticmethod
    def zeros(batch: int, frames: int, inter_channels: int, hop: int, device=None) -> "GeneratorNoiseTensors":
        return GeneratorNoiseTensors(
            prior=torch.zeros(batch, inter_channels, frames, device=device),
            rand_ini=torch.zeros(batch, NSF_HARMONICS, device=device),
            sine=torch.zeros(batch, frames * hop, NSF_HARMONICS, device=device),
        )

    @staticmethod
    def draw(batch: int, frames: int, inter_channels: int, hop: int, device=None,
             generator: torch.Generator | None = None) -> "GeneratorNoiseTensors":
        """Draw all three from the torch RNG (or `generator`), as the reference does."""
        rand_ini = torch.rand(batch, NSF_HARMONICS, device=device, generator=generator)
        rand_ini[:, 0] = 0
        return GeneratorNoiseTensors(
            prior=torch.randn(batch, inter_channels, frames, device=device, generator=generator),
            rand_ini=rand_ini,
            sine=torch.randn(batch, frames * hop, NSF_HARMONICS, device=device, generator=generator),
        )


@dataclass(frozen=True)
class InferenceParts:
    """Everything one inference computes (for parity checks and debugging); shapes as in `infer`."""

    audio: torch.Tensor
    f0: torch.Tensor
    x: torch.Tensor
    m_p: torch.Tensor
    logs_p: torch.Tensor
    z_p: torch.Tensor
    z: torch.Tensor
    g: torch.Tensor
    f0_coarse: torch.Tensor
    norm_lf0: torch.Tensor | None
    pred_lf0: torch.Tensor | None


class SynthesizerTrn(nn.Module):
    """The so-vits-svc 4.1 generator.

    Build with `SynthesizerTrn.from_config(config)`; the NSF source always uses
    NSF_SOURCE_SAMPLE_RATE (44.1 kHz) for its phase increments, as so-vits-svc does.
    """

    def __init__(self, model: ModelConfig, spec_channels: int, segment_frames: int,
                 source_sample_rate: float = NSF_SOURCE_SAMPLE_RATE):
        super().__init__()
        self.config = model
        self.spec_channels = spec_channels
        self.segment_size = segment_frames
        self.inter_channels = model.inter_channels
        self.hidden_channels = model.hidden_channels
        self.gin_channels = model.gin_channels
        self.n_speakers = model.n_speakers
        self.vol_embedding = model.vol_embedding
        self.use_automatic_f0_prediction = model.use_automatic_f0_prediction
        depthwise = model.use_depthwise_conv

        # Attribute order = so-vits-svc's = state-dict and optimizer parameter order.
        self.emb_g = nn.Embedding(model.n_speakers, model.gin_channels)
        if model.vol_embedding:
            self.emb_vol = nn.Linear(1, model.hidden_channels)
        self.pre = nn.Conv1d(model.ssl_dim, model.hidden_channels, kernel_size=5, padding=2)
        self.enc_p = TextEncoder(model.inter_channels, model.hidden_channels, model.kernel_size, model.n_layers,
                                 model.filter_channels, model.n_heads, model.p_dropout)
        self.dec = self._build_decoder(model, source_sample_rate)
        self.hop = self.dec.hop
        self.enc_q = PosteriorEncoder(spec_channels, model.inter_channels, model.hidden_channels, 5, 1, 16,
                                      gin_channels=model.gin_channels, depthwise=depthwise)
        if model.use_transformer_flow:
            self.flow = TransformerCouplingBlock(
                model.inter_channels, model.hidden_channels, model.filter_channels, model.n_heads,
                model.n_layers_trans_flow, 5, model.p_dropout, model.n_flow_layer,
                gin_channels=model.gin_channels, share_parameter=model.flow_share_parameter)
        else:
            self.flow = ResidualCouplingBlock(
                model.inter_channels, model.hidden_channels, 5, 1, model.n_flow_layer,
                gin_channels=model.gin_channels, share_parameter=model.flow_share_parameter, depthwise=depthwise)
        if model.use_automatic_f0_prediction:
            self.f0_decoder = F0Decoder(1, model.hidden_channels, model.filter_channels, model.n_heads,
                                        model.n_layers, model.kernel_size, model.p_dropout,
                                        spk_channels=model.gin_channels)
        self.emb_uv = nn.Embedding(2, model.hidden_channels)

    @classmethod
    def from_config(cls, config: SvcConfig) -> "SynthesizerTrn":
        return cls(config.model, config.spec_channels, config.segment_frames)

    @staticmethod
    def _build_decoder(model: ModelConfig, source_sample_rate: float) -> nn.Module:
        args = (model.inter_channels, model.resblock, model.resblock_kernel_sizes, model.resblock_dilation_sizes,
                model.upsample_rates, model.upsample_initial_channel, model.upsample_kernel_sizes,
                model.gin_channels, source_sample_rate)
        if model.vocoder_name == "nsf-snake-hifigan":
            from svc_train.models.nsf_snake_hifigan import NsfSnakeHifiGan

            return NsfSnakeHifiGan(*args)
        return NsfHifiGan(*args)

    # ----------------------------------------------------------------- helpers
    def embed_speaker(self, g: torch.Tensor) -> torch.Tensor:
        """Speaker conditioning [B, gin, 1].

        g: int64 ids [B] or [B, 1]; or float mixing weights [B, n_speakers] (a weighted sum
        of the speaker embeddings, for speaker mixes).
        """
        if g.is_floating_point():
            if g.dim() != 2 or g.size(1) != self.n_speakers:
                raise ValueError(f"speaker mix weights must be [B, {self.n_speakers}], got {list(g.shape)}")
            return (g.to(self.emb_g.weight.dtype) @ self.emb_g.weight).unsqueeze(-1)
        if g.dim() == 2 and g.size(1) == 1:
            g = g[:, 0]
        if g.dim() != 1:
            raise ValueError(f"speaker ids must be [B] or [B, 1], got {list(g.shape)}")
        if g.numel() and (int(g.min()) < 0 or int(g.max()) >= self.n_speakers):
            raise ValueError(f"speaker id out of range 0..{self.n_speakers - 1}: {g.tolist()}")
        return self.emb_g(g).unsqueeze(-1)

    def _encoder_input(self, c: torch.Tensor, uv: torch.Tensor, x_mask: torch.Tensor,
                       vol: torch.Tensor | None) -> torch.Tensor:
        x = self.pre(c) * x_mask + self.emb_uv(uv.long()).transpose(1, 2)
        if vol is not None and self.vol_embedding:
            x = x + self.emb_vol(vol[:, :, None]).transpose(1, 2)
        return x

    def _resolve_noise(self, noise, deterministic: bool, batch: int, frames: int, device) -> GeneratorNoiseTensors:
        if deterministic:
            return GeneratorNoiseTensors.zeros(batch, frames, self.inter_channels, self.hop, device)
        if noise is None:
            return GeneratorNoiseTensors.draw(batch, frames, self.inter_channels, self.hop, device)
        if isinstance(noise, GeneratorNoiseTensors):
            noise = {k: getattr(noise, k) for k in NOISE_KEYS}
        if not isinstance(noise, Mapping) or set(noise) != set(NOISE_KEYS):
            got = sorted(noise) if isinstance(noise, Mapping) else type(noise).__name__
            raise ValueError(f"noise must be a mapping with exactly the keys {list(NOISE_KEYS)}, got {got}")
        expected = {
            "prior": (batch, self.inter_channels, frames),
            "rand_ini": (batch, NSF_HARMONICS),
            "sine": (batch, frames * self.hop, NSF_HARMONICS),
        }
        tensors = {}
        for key, shape in expected.items():
            value = torch.as_tensor(noise[key], device=device, dtype=torch.float32)
            if tuple(value.shape) != shape:
                raise ValueError(f"noise['{key}'] must have shape {list(shape)}, got {list(value.shape)}")
            tensors[key] = value
        return GeneratorNoiseTensors(**tensors)

    # --------------------------------------------------------------- inference
    @torch.no_grad()
    def infer(self, c: torch.Tensor, f0: torch.Tensor, uv: torch.Tensor, g: torch.Tensor,
              noise_scale: float = 0.35, predict_f0: bool = False, vol: torch.Tensor | None = None,
              noise: Mapping[str, torch.Tensor] | GeneratorNoiseTensors | None = None, deterministic: bool = False,
              phase: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Convert: (audio [B, 1, T*hop], f0 [B, T] Hz actually used).

        c: [B, ssl_dim, T] units, f0: [B, T] Hz (0 = unvoiced), uv: [B, T] voicing 0/1,
        g: speaker ids [B] (or [B, 1], or mix weights [B, n_speakers]), vol: [B, T] (used
        when the model has vol_embedding). noise: {"prior", "rand_ini", "sine"} (see
        `GeneratorNoiseTensors`); None draws them; deterministic=True makes all three zero.
        phase: optional [B, T, 9] NSF frame-start phases (cycles, `svc_runtime.signal.
        nsf_phase`), replacing rand_ini, for chunked runs that carry phase.
        """
        parts = self.infer_parts(c, f0, uv, g, noise_scale, predict_f0, vol, noise, deterministic, phase)
        return parts.audio, parts.f0

    @torch.no_grad()
    def infer_parts(self, c, f0, uv, g, noise_scale=0.35, predict_f0=False, vol=None, noise=None,
                    deterministic=False, phase=None) -> InferenceParts:
        """`infer` returning every intermediate (`InferenceParts`)."""
        if c.dim() != 3:
            raise ValueError(f"c must be [B, ssl_dim, T], got {list(c.shape)}")
        batch, _, frames = c.shape
        for name, value in (("f0", f0), ("uv", uv)) + ((("vol", vol),) if vol is not None else ()):
            if tuple(value.shape) != (batch, frames):
                raise ValueError(f"{name} must be [B, T] = [{batch}, {frames}] to match c, got {list(value.shape)}")
        if predict_f0 and not self.use_automatic_f0_prediction:
            raise ValueError("predict_f0=True needs a model trained with use_automatic_f0_prediction")
        g = self.embed_speaker(g)
        x_mask = torch.ones(batch, 1, frames, dtype=c.dtype, device=c.device)
        x = self._encoder_input(c, uv, x_mask, vol)
        norm_lf0 = pred_lf0 = None
        if predict_f0:
            norm_lf0 = normalize_lf0(f0_to_lf0(f0), x_mask, uv, random_scale=False)
            pred_lf0 = self.f0_decoder(x, norm_lf0.to(x.dtype), x_mask, spk_emb=g).to(f0)
            f0 = lf0_to_f0(pred_lf0)
        draws = self._resolve_noise(noise, deterministic, batch, frames, c.device)
        coarse = f0_to_coarse(f0)
        z_p, m_p, logs_p, _ = self.enc_p(x, x_mask, coarse, noise_scale=noise_scale, noise=draws.prior.to(x.dtype))
        z = self.flow(z_p, x_mask, g=g, reverse=True)
        audio = self.dec(z * x_mask, f0, g, phase=phase, rand_ini=None if phase is not None else draws.rand_ini,
                         sine_noise=draws.sine)
        return InferenceParts(audio=audio, f0=f0, x=x, m_p=m_p, logs_p=logs_p, z_p=z_p, z=z, g=g,
                              f0_coarse=coarse, norm_lf0=norm_lf0, pred_lf0=pred_lf0)

    # ---------------------------------------------------------------- training
    def forward(self, c: torch.Tensor, f0: torch.Tensor, uv: torch.Tensor, spec: torch.Tensor,
                g: torch.Tensor | None = None, c_lengths: torch.Tensor | None = None,
                spec_lengths: torch.Tensor | None = None, vol: torch.Tensor | None = None):
        """Training step, as so-vits-svc 4.1's `SynthesizerTrn.forward`.

        c: [B, ssl_dim, T], f0/uv: [B, T], spec: [B, spec_channels, T], g: speaker ids [B, 1]
        (or [B]), lengths: [B] frames (None = full), vol: [B, T].
        Returns (o [B, 1, segment*hop], ids_slice [B], spec_mask [B, 1, T],
        (z, z_p, m_p, logs_p, m_q, logs_q), pred_lf0, norm_lf0, lf0); the last three are 0
        when the model has no F0 decoder.
        """
        batch, _, frames = c.shape
        if g is None:
            raise ValueError("speaker ids g are required")
        if c_lengths is None:
            c_lengths = torch.full((batch,), frames, dtype=torch.long, device=c.device)
        if spec_lengths is None:
            spec_lengths = torch.full((batch,), spec.size(2), dtype=torch.long, device=c.device)
        g = self.embed_speaker(g)
        x_mask = sequence_mask(c_lengths, frames).unsqueeze(1).to(c.dtype)
        x = self._encoder_input(c, uv, x_mask, vol)
        if self.use_automatic_f0_prediction:
            lf0 = f0_to_lf0(f0)
            norm_lf0 = normalize_lf0(lf0, x_mask, uv)
            pred_lf0 = self.f0_decoder(x, norm_lf0, x_mask, spk_emb=g)
        else:
            lf0 = norm_lf0 = pred_lf0 = 0
        _, m_p, logs_p, _ = self.enc_p(x, x_mask, f0_to_coarse(f0))
        z, m_q, logs_q, spec_mask = self.enc_q(spec, spec_lengths, g=g)
        z_p = self.flow(z, spec_mask, g=g)
        z_slice, pitch_slice, ids_slice = rand_slice_segments_with_pitch(z, f0, spec_lengths, self.segment_size)
        o = self.dec(z_slice, pitch_slice, g)
        return o, ids_slice, spec_mask, (z, z_p, m_p, logs_p, m_q, logs_q), pred_lf0, norm_lf0, lf0


def rand_slice_segments_with_pitch(x: torch.Tensor, pitch: torch.Tensor, x_lengths: torch.Tensor,
                                   segment_size: int):
    """Random aligned windows of `segment_size` frames: x [B, C, T] and pitch [B, T] -> slices, starts [B]."""
    batch = x.size(0)
    max_start = x_lengths - segment_size + 1
    if bool((max_start < 1).any()):
        raise ValueError(f"every item needs at least segment_size = {segment_size} frames, lengths "
                         f"{x_lengths.tolist()}")
    starts = (torch.rand(batch, device=x.device) * max_start).long()
    x_out = torch.stack([x[i, :, s:s + segment_size] for i, s in enumerate(starts.tolist())])
    pitch_out = torch.stack([pitch[i, s:s + segment_size] for i, s in enumerate(starts.tolist())])
    return x_out, pitch_out, starts
