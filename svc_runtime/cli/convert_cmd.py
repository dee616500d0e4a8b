"""`svc-run convert`: convert files and folders with a bundle (progress bar, summary, per-file errors)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from svc_runtime.cli.app import app
from svc_runtime.vocabulary import DEFAULT_SEED


@app.command("convert")
def convert(
    inputs: list[Path] = typer.Argument(..., help="Audio files and/or folders (searched recursively)."),
    bundle: Path = typer.Option(..., "--bundle", "-m", help="Bundle folder written by svc-export."),
    out_dir: Path = typer.Option(..., "--out-dir", "-o", help="Output folder; mirrors the input tree."),
    speaker: Optional[str] = typer.Option(None, "--speaker", "-s", help="Target speaker name (or id)."),
    spk_mix: Optional[Path] = typer.Option(None, "--spk-mix", help="Speaker-mix file (so-vits-svc spkmix.py format or JSON)."),
    transpose: float = typer.Option(0.0, "--transpose", "-t", help="Pitch shift in semitones."),
    f0_method: Optional[str] = typer.Option(None, "--f0-method", help="pm, harvest, dio, or the bundle's graph (default)."),
    f0_filter: bool = typer.Option(False, "--f0-filter", help="Fail a file in which no voice is found."),
    auto_predict_f0: bool = typer.Option(False, "--auto-predict-f0", help="Use the model's own F0 prediction (speech)."),
    blend_ratio: float = typer.Option(0.0, "--blend-ratio", help="Mix of retrieved / cluster features, 0..1."),
    blend_mode: str = typer.Option("auto", "--blend-mode", help="auto, retrieval (faiss index) or cluster."),
    noise_scale: float = typer.Option(0.4, "--noise-scale", help="Scale of the prior noise."),
    seed: int = typer.Option(DEFAULT_SEED, "--seed", help="Seed of every random term (reproducible output)."),
    loudness_mix: float = typer.Option(1.0, "--loudness-mix", help="1 keeps the output loudness, 0 follows the input's envelope."),
    slice_db: float = typer.Option(-40.0, "--slice-db", help="Silence threshold of the slicer (dB)."),
    pad_seconds: float = typer.Option(0.5, "--pad-seconds", help="Zero padding around each slice."),
    clip_seconds: float = typer.Option(0.0, "--clip-seconds", help="Forced chunk length (0: whole slices up to --max-window)."),
    max_window: float = typer.Option(30.0, "--max-window", help="Longest generator window in seconds."),
    context_seconds: float = typer.Option(1.0, "--context-seconds", help="Context on each side of a chunk."),
    crossfade_seconds: float = typer.Option(0.05, "--crossfade-seconds", help="Crossfade at chunk joins."),
    no_dc_removal: bool = typer.Option(False, "--no-dc-removal", help="Keep DC / sub-25 Hz content of the input."),
    output_format: str = typer.Option("wav", "--format", "-f", help="wav or flac."),
    batch_size: int = typer.Option(8, "--batch-size", help="Chunks per generator run."),
    shallow_diffusion: bool = typer.Option(
        False, "--shallow-diffusion", help="Refine the generator's output with the bundle's diffusion model."),
    k_step: int = typer.Option(100, "--k-step", help="Shallow diffusion steps (at most the model's k_step_max)."),
    only_diffusion: bool = typer.Option(
        False, "--only-diffusion", help="Render with the diffusion model alone (no generator; needs a model "
        "trained on every step)."),
    enhance: bool = typer.Option(
        False, "--enhance", help="Re-synthesise with the NSF-HiFiGAN vocoder (off with --shallow-diffusion)."),
    enhancer_adaptive_key: float = typer.Option(
        0.0, "--enhancer-adaptive-key", help="Semitones the enhancer shifts into the vocoder's range (high voices)."),
    diffusion_method: Optional[str] = typer.Option(
        None, "--diffusion-method", help="Sampler: ddim, pndm, dpm-solver, dpm-solver++ or unipc (default: the model's)."),
    diffusion_speedup: Optional[int] = typer.Option(
        None, "--diffusion-speedup", help="Diffusion steps per sampler step, >= 2 (default: the model's)."),
    provider: str = typer.Option("cpu", "--provider", help="cpu, cuda or tensorrt."),
    threads: int = typer.Option(0, "--threads", min=0, help="CPU threads per graph (0: ONNX Runtime's default)."),
    precision: Optional[str] = typer.Option(
        None, "--precision", help="fp32, fp16 or int8 graphs (default: fp16 on a GPU when the bundle has them, "
        "else fp32; int8: CPU only, a bundle exported with svc-export --int8)."),
    skip_existing: bool = typer.Option(False, "--skip-existing", help="Skip files whose output exists (resume)."),
    shard: Optional[str] = typer.Option(None, "--shard", help="i/n: convert only every n-th file from i (0-based)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log which provider runs each graph."),
) -> None:
    """Convert audio files with an exported bundle."""
    from svc_runtime.bundle.bundle import Bundle
    from svc_runtime.bundle.sessions import ProviderConfig
    from svc_runtime.pipeline.batch import BatchRunner, PlanError, parse_shard, plan_jobs
    from svc_runtime.pipeline.convert import Converter
    from svc_runtime.pipeline.options import ConvertOptions

    console = Console(stderr=True)
    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        options = ConvertOptions(
            speaker=(int(speaker) if speaker is not None and speaker.isdigit() else speaker),
            speaker_mix=spk_mix, transpose=transpose, f0_method=f0_method, f0_filter=f0_filter,
            auto_predict_f0=auto_predict_f0, blend_ratio=blend_ratio, blend_mode=blend_mode,
            noise_scale=noise_scale, seed=seed, loudness_mix=loudness_mix, slice_db=slice_db,
            pad_seconds=pad_seconds, clip_seconds=clip_seconds, max_window_seconds=max_window,
            context_seconds=context_seconds, crossfade_seconds=crossfade_seconds,
            remove_dc=not no_dc_removal, batch_size=batch_size, output_format=output_format,
            shallow_diffusion=shallow_diffusion, k_step=k_step, only_diffusion=only_diffusion, enhance=enhance,
            enhancer_adaptive_key=enhancer_adaptive_key, diffusion_method=diffusion_method,
            diffusion_speedup=diffusion_speedup,
        )
        jobs = plan_jobs(inputs, out_dir, output_format, parse_shard(shard))
    except (ValueError, PlanError) as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from None
    if not jobs:
        console.print("[yellow]no audio files found in the inputs (or in this shard)[/yellow]")
        raise typer.Exit(0)
    try:
        loaded = Bundle.load(bundle, provider=ProviderConfig(provider=provider, intra_op_threads=threads),
                             precision=precision)
        converter = Converter(loaded, options)
    except (OSError, ValueError, RuntimeError) as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from None
    for role, session in loaded.sessions.items():
        console.print(f"[dim]{role}: {session.name} on {session.provider}[/dim]")
    console.print(f"[dim]F0: {converter.f0_source.name}[/dim]")
    if converter.diffusion is not None:
        spec = converter.diffusion.spec
        mode = f"shallow diffusion, k_step {options.k_step}" if options.shallow_diffusion else "only diffusion"
        console.print(f"[dim]{mode}: {options.diffusion_method or spec.method}, "
                      f"speedup {options.diffusion_speedup or spec.speedup}[/dim]")
    if converter.enhancer is not None:
        console.print(f"[dim]enhancer: NSF-HiFiGAN, adaptive key {options.enhancer_adaptive_key:g}[/dim]")
    runner = BatchRunner(converter, skip_existing=skip_existing)
    results = []
    t0 = time.perf_counter()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("converting", total=len(jobs))
        for result in runner.run(jobs):
            results.append(result)
            name = result.job.source.name
            if result.status == "failed":
                progress.console.print(f"[red]failed[/red] {result.job.source}: {result.reason}")
            for note in result.notes:
                progress.console.print(f"[yellow]note[/yellow] {result.job.source}: {note}")
            progress.update(task, advance=1, description=f"converting [dim]{name}[/dim]")
    wall = time.perf_counter() - t0
    console.print(summary_table(results, wall))
    if any(r.status == "failed" for r in results):
        raise typer.Exit(1)


def summary_table(results, wall_seconds: float) -> Table:
    """Files, audio seconds, wall seconds, real-time factor and failures of one run."""
    converted = [r for r in results if r.status == "converted"]
    failed = [r for r in results if r.status == "failed"]
    skipped = [r for r in results if r.status == "skipped"]
    audio = sum(r.audio_seconds for r in converted)
    table = Table(title="svc-run convert")
    for column in ("files", "converted", "skipped", "failed", "audio s", "wall s", "RTF"):
        table.add_column(column, justify="right")
    rtf = f"{wall_seconds / audio:.3f}" if audio > 0 else "-"
    table.add_row(str(len(results)), str(len(converted)), str(len(skipped)), str(len(failed)),
                  f"{audio:.1f}", f"{wall_seconds:.1f}", rtf)
    if failed:
        table.caption = "failed: " + "; ".join(f"{r.job.source.name} ({r.reason})" for r in failed)
    return table
