"""Export shallow diffusion and the NSF-HiFiGAN vocoder as three ONNX graphs, proven against torch.

Graphs (B batch, T mel frames, C unit channels, S speakers, Hd hidden, M mels,
H = 9 sine components, N = T * hop samples):

- ``diffusion_condition``: c [B, C, T], f0 [B, T] Hz, vol [B, T], speaker [B, T, S]
  (per-frame speaker weights; one-hot = one speaker) -> cond [B, Hd, T]. Computed once.
- ``diffusion_denoiser``: x [B, 1, M, T], t [B] (diffusion step, may be fractional),
  cond [B, Hd, T] -> eps [B, 1, M, T]. Called once per sampler step by the runtime loop
  (:mod:`svc_runtime.diffusion.samplers`).
- ``nsf_hifigan``: mel [B, M, T] natural-log mel, f0 [B, T] Hz, phase [B, T, H] cycles,
  sine_noise [B, N, H] -> audio [B, 1, N].

:func:`export_diffusion` writes them (or only the vocoder for the enhancer) with a
``diffusion.json`` that :class:`svc_runtime.diffusion.ShallowDiffusion` reads, and
returns the manifest entries the bundle writer records.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from svc_export.onnx_export import (
    OPSET,
    GraphPlan,
    ParityResult,
    TensorSpecSketch,
    check_onnx,
    export_onnx,
    require_parity,
    torch_parity,
)
from svc_runtime.diffusion.spec import (
    CONDITION_GRAPH,
    DENOISER_GRAPH,
    SPEC_FILE,
    VOCODER_GRAPH,
    DiffusionSpec,
    VocoderSpec,
)
from svc_runtime.signal.nsf_phase import NSF_HARMONICS
from svc_train.diffusion.config import DiffusionConfig
from svc_train.diffusion.nsf_hifigan import NsfHifiGanVocoder
from svc_train.diffusion.unit2mel import Unit2Mel

PARITY_FRAMES = (17, 40, 83)
"""Mel lengths of the three parity runs (the first also traces the graph)."""


class ConditionGraph(nn.Module):
    """Unit2Mel's embedding sum with per-frame speaker weights (see module docstring)."""

    def __init__(self, model: Unit2Mel) -> None:
        super().__init__()
        self.model = model

    def forward(self, c: torch.Tensor, f0: torch.Tensor, vol: torch.Tensor, speaker: torch.Tensor) -> torch.Tensor:
        m = self.model
        x = m.unit_embed(c.transpose(1, 2)) + m.f0_embed((1 + f0.unsqueeze(-1) / 700).log()) + m.volume_embed(vol.unsqueeze(-1))
        if m.n_spk > 1:
            x = x + torch.matmul(speaker, m.spk_embed.weight)
        else:
            x = x + 0.0 * speaker.sum(dim=-1, keepdim=True)  # keep the input in the graph for a uniform signature
        return x.transpose(1, 2)


class DenoiserGraph(nn.Module):
    def __init__(self, model: Unit2Mel) -> None:
        super().__init__()
        self.wavenet = model.decoder.denoise_fn

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.wavenet(x, t, cond)


class VocoderGraph(nn.Module):
    def __init__(self, vocoder: NsfHifiGanVocoder) -> None:
        super().__init__()
        self.vocoder = vocoder

    def forward(self, mel, f0, phase, sine_noise) -> torch.Tensor:
        return self.vocoder(mel, f0, phase, sine_noise)


def load_networks(
    vocoder_model: str | Path, diffusion_checkpoint: str | Path | None = None, diffusion_config: str | Path | None = None
) -> tuple[NsfHifiGanVocoder, Unit2Mel | None, DiffusionConfig | None]:
    """Torch modules for :func:`diffusion_plans` / :func:`export_diffusion` from the user's files:
    the nsf_hifigan ``model`` (config.json beside it) and optionally a ``model_*.pt`` + diffusion.yaml
    (whose ``vocoder.type`` picks the natural-log or log10 mel convention)."""
    from svc_train.diffusion.nsf_hifigan import load_vocoder
    from svc_train.diffusion.trainer import load_diffusion

    if (diffusion_checkpoint is None) != (diffusion_config is None):
        raise ValueError("give both the diffusion checkpoint (model_*.pt) and its diffusion.yaml, or neither")
    model = config = None
    if diffusion_checkpoint is not None:
        model, config = load_diffusion(diffusion_checkpoint, diffusion_config)
    log10 = config is not None and config.vocoder.type == "nsf-hifigan-log10"
    return load_vocoder(vocoder_model, log10_mel=log10), model, config


def _spec(name: str, shape: tuple[int | str, ...], dtype: str = "float32") -> TensorSpecSketch:
    return TensorSpecSketch(name, dtype, shape)


def condition_plan(model: Unit2Mel, lengths: tuple[int, ...] = PARITY_FRAMES) -> GraphPlan:
    c_dim, n_spk = model.input_channel, max(model.n_spk, 1)

    def make(frames: int, seed: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        speaker = torch.softmax(torch.randn(1, frames, n_spk, generator=g), dim=-1)
        return {
            "c": torch.randn(1, c_dim, frames, generator=g),
            "f0": 100.0 + 300.0 * torch.rand(1, frames, generator=g),
            "vol": torch.rand(1, frames, generator=g),
            "speaker": speaker,
        }

    return GraphPlan(
        name=CONDITION_GRAPH, role="diffusion_condition", module=ConditionGraph(model).eval(),
        inputs=(_spec("c", ("batch", c_dim, "frames")), _spec("f0", ("batch", "frames")),
                _spec("vol", ("batch", "frames")), _spec("speaker", ("batch", "frames", n_spk))),
        outputs=(_spec("cond", ("batch", model.n_hidden, "frames")),),
        make_inputs=make, lengths=lengths, tolerance={"cond": 1e-4},
    )


def denoiser_plan(model: Unit2Mel, lengths: tuple[int, ...] = PARITY_FRAMES) -> GraphPlan:
    m_dim, hidden = model.out_dims, model.n_hidden

    def make(frames: int, seed: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        return {
            "x": torch.randn(1, 1, m_dim, frames, generator=g),
            "t": torch.tensor([37.5 * (seed + 1)], dtype=torch.float32),
            "cond": torch.randn(1, hidden, frames, generator=g),
        }

    return GraphPlan(
        name=DENOISER_GRAPH, role="diffusion_denoiser", module=DenoiserGraph(model).eval(),
        inputs=(_spec("x", ("batch", 1, m_dim, "frames")), _spec("t", ("batch",)),
                _spec("cond", ("batch", hidden, "frames"))),
        outputs=(_spec("eps", ("batch", 1, m_dim, "frames")),),
        make_inputs=make, lengths=lengths, tolerance={"eps": 1e-4},
    )


def vocoder_plan(vocoder: NsfHifiGanVocoder, lengths: tuple[int, ...] = PARITY_FRAMES) -> GraphPlan:
    from svc_runtime.signal.nsf_phase import frame_start_phases

    mels, hop = vocoder.num_mels, vocoder.hop_size

    def make(frames: int, seed: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        f0 = 110.0 + 330.0 * torch.rand(1, frames, generator=g)
        f0[:, : frames // 5] = 0.0  # an unvoiced stretch
        phase, _ = frame_start_phases(f0.numpy(), hop, source_sr=vocoder.sampling_rate)
        return {
            "mel": torch.randn(1, mels, frames, generator=g) - 5.0,
            "f0": f0,
            "phase": torch.from_numpy(phase.astype("float32")),
            "sine_noise": torch.randn(1, frames * hop, NSF_HARMONICS, generator=g),
        }

    return GraphPlan(
        name=VOCODER_GRAPH, role="vocoder", module=VocoderGraph(vocoder).eval(),
        inputs=(_spec("mel", ("batch", mels, "frames")), _spec("f0", ("batch", "frames")),
                _spec("phase", ("batch", "frames", NSF_HARMONICS)),
                _spec("sine_noise", ("batch", "samples", NSF_HARMONICS))),
        outputs=(_spec("audio", ("batch", 1, "samples")),),
        make_inputs=make, lengths=lengths, tolerance={"audio": 1e-4},
    )


def diffusion_plans(vocoder: NsfHifiGanVocoder, model: Unit2Mel | None = None, lengths: tuple[int, ...] = PARITY_FRAMES) -> list[GraphPlan]:
    """The plans for the bundle exporter: the vocoder (enough for --enhance) and, with a model, the
    condition and denoiser graphs. Graph names: nsf_hifigan, diffusion_condition, diffusion_denoiser."""
    plans = [vocoder_plan(vocoder.eval(), lengths)]
    if model is not None:
        if model.out_dims != vocoder.num_mels:
            raise ValueError(f"the diffusion model renders {model.out_dims} mels but the vocoder takes {vocoder.num_mels}")
        plans += [condition_plan(model.eval(), lengths), denoiser_plan(model.eval(), lengths)]
    return plans


@dataclass(frozen=True)
class ExportedGraph:
    """One written graph: what the bundle manifest records about it."""

    name: str
    role: str
    file: str
    sha256: str
    opset: int
    inputs: list[dict]
    outputs: list[dict]
    parity: list[dict]

    def manifest_entry(self) -> dict:
        return asdict(self)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def export_plan(plan: GraphPlan, folder: Path) -> ExportedGraph:
    """Trace, check and prove one plan; raises ``ParityError`` past its tolerance."""
    path = folder / f"{plan.name}.onnx"
    export_onnx(plan, path)
    check_onnx(path)
    results: list[ParityResult] = torch_parity(plan, path)
    require_parity(results)
    describe = lambda s: {"name": s.name, "dtype": s.dtype, "shape": list(s.shape)}  # noqa: E731
    return ExportedGraph(
        name=plan.name, role=plan.role, file=path.name, sha256=_sha256(path), opset=OPSET,
        inputs=[describe(s) for s in plan.inputs], outputs=[describe(s) for s in plan.outputs],
        parity=[{"output": r.output, "length": r.length, "max_abs_error": r.max_abs_error, "tolerance": r.tolerance}
                for r in results],
    )


def vocoder_spec(vocoder: NsfHifiGanVocoder) -> VocoderSpec:
    c = vocoder.config
    return VocoderSpec(
        sampling_rate=c.sampling_rate, hop_size=c.hop_size, num_mels=c.num_mels, n_fft=c.n_fft,
        win_size=c.win_size, fmin=c.fmin, fmax=c.fmax, harmonics=NSF_HARMONICS, graph=f"{VOCODER_GRAPH}.onnx",
    )


def diffusion_spec(model: Unit2Mel, config: DiffusionConfig, vocoder: NsfHifiGanVocoder) -> DiffusionSpec:
    decoder = model.decoder
    return DiffusionSpec(
        vocoder=vocoder_spec(vocoder),
        timesteps=decoder.num_timesteps, k_step_max=decoder.k_step, max_beta=float(decoder.schedule.max_beta),
        spec_min=float(decoder.spec_min.flatten()[0]), spec_max=float(decoder.spec_max.flatten()[0]),
        unit_channels=model.input_channel, hidden=model.n_hidden, n_spk=max(model.n_spk, 1),
        sampling_rate=config.data.sampling_rate, hop_size=config.data.block_size,
        method=config.infer.method, speedup=config.infer.speedup, speakers=dict(config.spk),
        condition_graph=f"{CONDITION_GRAPH}.onnx", denoiser_graph=f"{DENOISER_GRAPH}.onnx",
    )


def export_diffusion(
    folder: str | Path,
    vocoder: NsfHifiGanVocoder,
    model: Unit2Mel | None = None,
    config: DiffusionConfig | None = None,
    lengths: tuple[int, ...] = PARITY_FRAMES,
) -> dict:
    """Write the vocoder graph (enhancer) and, with ``model``/``config``, the two diffusion graphs.

    Returns ``{"spec": <diffusion.json content>, "graphs": [manifest entries]}``; the same
    spec is written to ``folder/diffusion.json``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if model is not None and config is None:
        raise ValueError("exporting the diffusion model needs its DiffusionConfig (sample rate, hop, sampler)")
    graphs = [export_plan(plan, folder) for plan in diffusion_plans(vocoder, model, lengths)]
    if model is not None:
        spec: dict = diffusion_spec(model, config, vocoder).to_dict()
    else:
        spec = {"vocoder": vocoder_spec(vocoder).to_dict()}
    (folder / SPEC_FILE).write_text(json.dumps(spec, indent=2), encoding="utf-8")
    return {"spec": spec, "graphs": [g.manifest_entry() for g in graphs]}


__all__ = [
    "ConditionGraph",
    "DenoiserGraph",
    "ExportedGraph",
    "VocoderGraph",
    "condition_plan",
    "denoiser_plan",
    "diffusion_plans",
    "diffusion_spec",
    "export_diffusion",
    "export_plan",
    "load_networks",
    "vocoder_plan",
]
