"""`svc-run convert`: convert files and folders with a bundle (progress bar, summary, per-file errors)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import typer

from svc_runtime.cli.base import ExitCode, fail, warn
from svc_runtime.cli.base import console as make_console
from svc_runtime.cli.dataclass_options import Flag, with_options
from svc_runtime.pipeline.options import ConvertOptions


def _speaker(value: str) -> str | int:
    """A speaker name, or its id when given as digits."""
    return int(value) if value.isdigit() else value


# Flag names and help of ConvertOptions' fields; defaults, types and checks come from the dataclass.
CONVERT_FLAGS: dict[str, Flag] = {
    "speaker": Flag(("--speaker", "-s"), "Target speaker name (or id).", parse=_speaker),
    "speaker_mix": Flag(("--spk-mix",), "Speaker-mix file (so-vits-svc spkmix.py format or JSON)."),
    "transpose": Flag(("--transpose", "-t"), "Pitch shift in semitones."),
    "f0_method": Flag(("--f0-method",), "pm, harvest, dio, or the bundle's graph (default)."),
    "f0_filter": Flag(("--f0-filter",), "Fail a file in which no voice is found."),
    "auto_predict_f0": Flag(("--auto-predict-f0",), "Use the model's own F0 prediction (speech)."),
    "blend_ratio": Flag(("--blend-ratio",), "Mix of retrieved / cluster features, 0..1."),
    "blend_mode": Flag(("--blend-mode",), "auto, retrieval (faiss index) or cluster."),
    "noise_scale": Flag(("--noise-scale",), "Scale of the prior noise (so-vits-svc's inference default)."),
    "seed": Flag(("--seed",), "Seed of every random term (reproducible output)."),
    "loudness_mix": Flag(("--loudness-mix",), "1 keeps the output loudness, 0 follows the input's envelope."),
    "slice_db": Flag(("--slice-db",), "Silence threshold of the slicer (dB)."),
    "pad_seconds": Flag(("--pad-seconds",), "Zero padding around each slice."),
    "clip_seconds": Flag(("--clip-seconds",), "Forced chunk length (0: whole slices up to --max-window)."),
    "max_window_seconds": Flag(("--max-window",), "Longest generator window in seconds."),
    "context_seconds": Flag(("--context-seconds",), "Context on each side of a chunk."),
    "crossfade_seconds": Flag(("--crossfade-seconds",), "Crossfade at chunk joins."),
    "remove_dc": Flag(("--dc-removal/--no-dc-removal",), "Remove DC / sub-25 Hz content of the input."),
    "batch_size": Flag(("--batch-size",), "Chunks per generator run."),
    "batch_seconds": Flag(("--batch-seconds",), "Most audio seconds per generator run (bounds memory)."),
    "output_format": Flag(("--format", "-f"), "wav or flac."),
    "shallow_diffusion": Flag(("--shallow-diffusion",), "Refine the generator's output with the bundle's diffusion model."),
    "k_step": Flag(("--k-step",), "Shallow diffusion steps (at most the model's k_step_max)."),
    "only_diffusion": Flag(("--only-diffusion",), "Render with the diffusion model alone (no generator; needs a "
                           "model trained on every step)."),
    "enhance": Flag(("--enhance",), "Re-synthesise with the NSF-HiFiGAN vocoder (off with --shallow-diffusion)."),
    "enhancer_adaptive_key": Flag(("--enhancer-adaptive-key",), "Semitones the enhancer shifts into the vocoder's "
                                  "range (high voices)."),
    "diffusion_method": Flag(("--diffusion-method",), "Sampler: ddim, pndm, dpm-solver, dpm-solver++ or unipc "
                             "(default: the model's)."),
    "diffusion_speedup": Flag(("--diffusion-speedup",), "Diffusion steps per sampler step, >= 2 (default: the model's)."),
}


def check_out_dir(out_dir: Path) -> None:
    """Refuse an output folder that cannot be one (an existing file), before any model is loaded."""
    for folder in (out_dir, *out_dir.parents):
        if folder.exists():
            if not folder.is_dir():
                fail(f"{folder}: exists and is not a folder; choose another --out-dir", ExitCode.USAGE)
            break


def check_f0_method(method: str | None) -> None:
    """A classic F0 method needs the `classic` extra: refused before any model loads when it is missing."""
    from svc_runtime.pitch.classic import CLASSIC_METHODS, ClassicPitchUnavailable, load_parselmouth, load_pyworld

    if method not in CLASSIC_METHODS:
        return
    try:
        (load_parselmouth if method == "pm" else load_pyworld)()
    except ClassicPitchUnavailable as error:
        fail(f"--f0-method {method}: {error}", ExitCode.MISSING_EXTRA)


@with_options(ConvertOptions, CONVERT_FLAGS)
def convert(
    options: ConvertOptions,
    inputs: list[Path] = typer.Argument(..., help="Audio files and/or folders (searched recursively).",
                                        show_default=False),
    bundle: Path = typer.Option(..., "--bundle", "-m", help="Bundle folder written by svc-export.", show_default=False),
    out_dir: Path = typer.Option(..., "--out-dir", "-o", help="Output folder (created); mirrors the input tree.",
                                 show_default=False),
    provider: str = typer.Option("cpu", "--provider", help="cpu, cuda, tensorrt or openvino."),
    threads: int = typer.Option(0, "--threads", min=0, help="CPU threads per graph (0: ONNX Runtime's default)."),
    precision: Optional[str] = typer.Option(
        None, "--precision", help="fp32, fp16, int8 or bf16 (default: fp16 on a GPU when the bundle has them, "
        "else fp32; int8: CPU only, a bundle exported with svc-export --int8; bf16: --provider openvino on a CPU "
        "with AVX512-BF16 or AMX, the fp32 graphs computed in bf16 with the pitch network in f32)."),
    skip_existing: bool = typer.Option(False, "--skip-existing", help="Skip files whose output exists (resume)."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace outputs that were converted with other settings (refused otherwise)."),
    max_duration_minutes: float = typer.Option(
        180.0, "--max-duration", min=0.01, help="Longest input in minutes (checked from the header before decoding)."),
    shard: Optional[str] = typer.Option(None, "--shard", help="i/n: convert only every n-th file from i (0-based)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log which provider runs each graph."),
) -> None:
    """Convert audio files with an exported bundle."""
    from svc_runtime.bundle.bundle import Bundle
    from svc_runtime.bundle.sessions import ProviderConfig
    from svc_runtime.cli.batch_report import run_batch
    from svc_runtime.pipeline.batch import BatchRunner, PlanError, parse_shard, plan_jobs
    from svc_runtime.pipeline.convert import Converter

    console = make_console()
    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    check_out_dir(out_dir)
    check_f0_method(options.f0_method)
    try:
        jobs = plan_jobs(inputs, out_dir, options.output_format, parse_shard(shard))
    except (ValueError, PlanError) as e:
        fail(str(e), ExitCode.USAGE)
    if not jobs:
        warn("no audio files found in the inputs (or in this shard)")
        raise typer.Exit(int(ExitCode.OK))
    compute = "fp32"
    if precision == "bf16":  # OpenVINO's compute precision over the bundle's fp32 graphs
        if provider != "openvino":
            fail("--precision bf16 runs on OpenVINO: add --provider openvino (pip install svc-toolkit[openvino])",
                 ExitCode.USAGE)
        compute, precision = "bf16", "fp32"
    try:
        loaded = Bundle.load(bundle, provider=ProviderConfig(provider=provider, intra_op_threads=threads,
                                                             inference_precision=compute), precision=precision)
        converter = Converter(loaded, options)
    except (OSError, ValueError, RuntimeError) as e:
        fail(str(e), ExitCode.USAGE)
    for role, session in loaded.sessions.items():
        console.print(f"[dim]{role}: {session.name} on {session.provider}[/dim]")
    console.print(f"[dim]F0: {converter.f0_name}[/dim]")
    if converter.diffusion is not None:
        spec = converter.diffusion.spec
        mode = f"shallow diffusion, k_step {options.k_step}" if options.shallow_diffusion else "only diffusion"
        console.print(f"[dim]{mode}: {options.diffusion_method or spec.method}, "
                      f"speedup {options.diffusion_speedup or spec.speedup}[/dim]")
    if converter.enhancer is not None:
        console.print(f"[dim]enhancer: NSF-HiFiGAN, adaptive key {options.enhancer_adaptive_key:g}[/dim]")
    runner = BatchRunner(converter, skip_existing=skip_existing, overwrite=overwrite,
                         max_duration_s=max_duration_minutes * 60.0)
    raise typer.Exit(run_batch(runner, jobs, out_dir, console))
