"""Training speed on a real folder of recordings: data preparation, then a few training steps.

    python -m benchmarks.train_speed                                  # ../shared/corpus/speech, tiny model, CPU
    python -m benchmarks.train_speed --size standard --device cuda --steps 50
    python -m benchmarks.train_speed --d-channel-scale 0.125          # narrowed discriminator (CPU smoke runs)
    python -m benchmarks.train_speed --size cpu --d-channel-scale 0.25  # the documented CPU preset (README)

Runs ``svc-train resample`` -> ``config`` -> ``features`` on the corpus (three speaker
folders), then trains ``--steps`` steps in one process and reports the time of each
preparation stage, steps per second (after ``--warmup`` steps) and the per-step loss
curve (mel L1 x c_mel, generator total, discriminator). No pretrained weights exist
here: the speech encoder defaults to the small random ContentVec test fixture, so the
units mean nothing, but every array has the shape and cost of the real pipeline except
the encoder itself (a real ContentVec is ~100x the fixture's compute).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table
from typer.testing import CliRunner

from svc_train.cli import app
from svc_train.data.config_builder import MODEL_SIZES
from svc_train.training import Trainer, TrainOptions

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpus" / "speech"
DEFAULT_ENCODER = ROOT / "tests" / "fixtures" / "contentvec_small" / "hf"


def _cli(args: list[str]) -> float:
    start = time.perf_counter()
    result = CliRunner().invoke(app, args)
    if result.exit_code != 0:
        raise RuntimeError(f"svc-train {' '.join(args)} failed:\n{result.output}\n{result.exception!r}")
    return time.perf_counter() - start


def prepare(args: argparse.Namespace, work: Path) -> tuple[Path, dict[str, float]]:
    dataset, config = work / "dataset", work / "config.json"
    timings = {}
    timings["resample"] = _cli(["resample", str(args.corpus), str(dataset), "-j", str(args.workers)])
    config_args = ["config", str(dataset), "-o", str(config), "--filelists", str(work / "lists"), "--size", args.size,
                   "--encoder-checkpoint", str(args.encoder),
                   "--set", f"train.log_interval={args.steps + 1}", "--set", f"train.eval_interval={10**9}",
                   "--set", f"train.fp16_run={'true' if args.fp16 else 'false'}"]
    if args.batch_size is not None:
        config_args += ["--set", f"train.batch_size={args.batch_size}"]
    for assignment in args.set:
        config_args += ["--set", assignment]
    timings["config"] = _cli(config_args)
    timings["features"] = _cli(["features", "-c", str(config), "-e", str(args.encoder), "--f0-method", args.f0_method,
                                "-j", str(args.workers)])
    return config, timings


def train_steps(args: argparse.Namespace, config: Path, work: Path) -> tuple[list[float], list[dict], Trainer]:
    options = TrainOptions(config, work / "model", max_steps=None, device=args.device, workers=0,
                           tensorboard=False, discriminator_scale=args.d_channel_scale)
    trainer = Trainer(options, Console(stderr=True, quiet=True))
    durations: list[float] = []
    losses: list[dict] = []
    sync = torch.cuda.synchronize if trainer.device.type == "cuda" else (lambda: None)
    while len(durations) < args.steps:
        trainer.train_set.set_epoch(trainer.epoch)
        trainer.sampler.set_epoch(trainer.epoch)
        for batch in trainer.train_loader:
            if len(durations) >= args.steps:
                break
            sync()
            start = time.perf_counter()
            step_losses = trainer.train_step(batch)
            sync()
            durations.append(time.perf_counter() - start)
            losses.append({k: float(v) for k, v in step_losses.items() if k.startswith("loss/")})
            trainer.step += 1
        trainer.epoch += 1
    return durations, losses, trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--work", type=Path, default=Path("/tmp/svc_train_speed"))
    parser.add_argument("--encoder", type=Path, default=DEFAULT_ENCODER)
    parser.add_argument("--f0-method", default="dio")
    parser.add_argument("--size", default="tiny", choices=MODEL_SIZES)
    parser.add_argument("--set", action="append", default=[], help="extra config override SECTION.KEY=VALUE")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the size template's")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default=None)
    parser.add_argument("--fp16", action="store_true")
    parser.add_argument("--d-channel-scale", type=float, default=1.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: default)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--reuse", action="store_true",
                        help="train on the dataset, features and config.json already in --work (no preparation)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    console = Console()
    work = args.work
    load_before = os.getloadavg()[0]
    if args.reuse and (work / "config.json").is_file():  # the corpus prepared by an earlier run
        config, timings = work / "config.json", {}
        for model_dir in work.glob("model*"):
            import shutil

            shutil.rmtree(model_dir)
    else:
        if work.exists():
            import shutil

            shutil.rmtree(work)
        work.mkdir(parents=True)
        config, timings = prepare(args, work)
    durations, losses, trainer = train_steps(args, config, work)
    measured = durations[args.warmup:] or durations
    steps_per_s = len(measured) / sum(measured)
    segment_s = trainer.config.train.segment_size / trainer.config.data.sampling_rate
    device = str(trainer.device)
    if trainer.device.type == "cuda":
        device += f" ({torch.cuda.get_device_name(trainer.device)})"

    table = Table(title="data preparation")
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    for stage, seconds in timings.items():
        table.add_row(stage, f"{seconds:.1f}")
    console.print(table)
    curve = Table(title="loss curve")
    for column in ("step", "mel (x c_mel)", "kl", "g total", "d total", "seconds"):
        curve.add_column(column, justify="right")
    for i, (entry, seconds) in enumerate(zip(losses, durations)):
        curve.add_row(str(i), f"{entry['loss/g/mel']:.2f}", f"{entry['loss/g/kl']:.2f}",
                      f"{entry['loss/g/total']:.2f}", f"{entry['loss/d/total']:.3f}", f"{seconds:.2f}")
    console.print(curve)
    n_g = sum(p.numel() for p in trainer.generator.parameters())
    n_d = sum(p.numel() for p in trainer.net_d.parameters())
    summary = {
        "device": device,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg()[0],
        "size": args.size,
        "generator_params": n_g,
        "discriminator_params": n_d,
        "batch_size": trainer.config.train.batch_size,
        "segment_seconds": segment_s,
        "train_clips": len(trainer.train_set),
        "fp16": bool(args.fp16),
        "preparation_seconds": timings,
        "steps": len(durations),
        "steps_per_second": steps_per_s,
        "audio_seconds_per_second": steps_per_s * segment_s * trainer.config.train.batch_size,
        "mel_loss": [e["loss/g/mel"] for e in losses],
    }
    console.print(
        f"[bold]{steps_per_s:.3f} steps/s[/] ({1 / steps_per_s:.2f} s/step) on {device}, {args.size} model "
        f"(G {n_g / 1e6:.2f} M, D {n_d / 1e6:.2f} M params), batch {summary['batch_size']} x {segment_s:.3f} s; "
        f"load average {load_before:.1f} -> {summary['load_average_after']:.1f}"
    )
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
