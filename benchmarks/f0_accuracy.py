"""F0 accuracy and speed of every pitch method on the synthetic sung corpus with exact ground truth.

    python -m benchmarks.f0_accuracy [--corpus DIR] [--rmvpe-checkpoint rmvpe.pt|.onnx]
                                     [--fcpe-checkpoint fcpe.onnx] [--methods harvest,dio,...]

Ground truth: ``NAME.f0.csv`` next to each ``NAME.wav`` (10 ms grid, 0 = unvoiced). Every
method runs through ``svc_runtime.pitch.extract.extract_f0`` on the same grid (44.1 kHz,
hop 441), raw (no interpolation), with so-vits-svc's defaults (range 50-1100 Hz, salience
threshold 0.05, Praat voicing 0.6). Metrics (as mir_eval's melody metrics), pooled over
all frames of a group of files:

* RPA: share of ground-truth voiced frames the method calls voiced within 50 cents;
* RCA: the same with octave errors forgiven;
* voicing recall / false alarm: share of GT-voiced / GT-unvoiced frames called voiced;
* median |cents| error over frames both call voiced;
* speed: wall seconds per second of audio, one thread (network loading excluded, decoding included).

Writes ``benchmarks/results/f0_accuracy.json`` and ``.md`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from svc_runtime.audio.decode import decode_audio
from svc_runtime.pitch.classic import ClassicPitchUnavailable
from svc_runtime.pitch.extract import (
    FrameGrid,
    PitchExtractionError,
    PitchOptions,
    extract_f0,
    load_pitch_estimator,
)

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "sung"
RESULTS = Path(__file__).resolve().parent / "results"
GT_GRID = FrameGrid(44100, 441)  # the ground-truth CSVs' 10 ms rows
ALL_METHODS = ("harvest", "dio", "pm", "crepe", "rmvpe", "fcpe")
THREADS = 1  # every method single-threaded: comparable, and stable on a shared machine
GROUPS = ("clean", "noisy")


@dataclass
class FrameCounts:
    """Pooled frame counts of one method on a group of files."""

    gt_voiced: int = 0
    gt_unvoiced: int = 0
    voiced_hits: int = 0  # GT voiced and estimate voiced
    false_alarms: int = 0  # GT unvoiced and estimate voiced
    pitch_ok: int = 0  # GT voiced, estimate voiced, within 50 cents
    chroma_ok: int = 0  # the same, octave errors forgiven
    cents: list[float] = field(default_factory=list)  # |error| on frames both call voiced
    seconds: float = 0.0  # compute time
    audio_seconds: float = 0.0

    def add(self, est: np.ndarray, gt: np.ndarray, seconds: float, audio_seconds: float) -> None:
        ref_v, est_v = gt > 0, est > 0
        both = ref_v & est_v
        cents = np.zeros_like(gt)
        cents[both] = 1200.0 * np.log2(est[both] / gt[both])
        chroma = np.abs(np.mod(cents + 600.0, 1200.0) - 600.0)
        self.gt_voiced += int(ref_v.sum())
        self.gt_unvoiced += int((~ref_v).sum())
        self.voiced_hits += int(both.sum())
        self.false_alarms += int((est_v & ~ref_v).sum())
        self.pitch_ok += int((both & (np.abs(cents) <= 50.0)).sum())
        self.chroma_ok += int((both & (chroma <= 50.0)).sum())
        self.cents.extend(np.abs(cents[both]).tolist())
        self.seconds += seconds
        self.audio_seconds += audio_seconds

    def summary(self) -> dict[str, float | int | None]:
        def ratio(a: int, b: int) -> float | None:
            return round(a / b, 4) if b else None

        return {
            "rpa": ratio(self.pitch_ok, self.gt_voiced),
            "rca": ratio(self.chroma_ok, self.gt_voiced),
            "voicing_recall": ratio(self.voiced_hits, self.gt_voiced),
            "voicing_false_alarm": ratio(self.false_alarms, self.gt_unvoiced),
            "median_cents": round(float(np.median(self.cents)), 3) if self.cents else None,
            "p90_cents": round(float(np.percentile(self.cents, 90)), 3) if self.cents else None,
            "gross_error_rate": ratio(self.voiced_hits - self.pitch_ok, self.voiced_hits),
            "seconds_per_audio_second": round(self.seconds / self.audio_seconds, 4) if self.audio_seconds else None,
            "frames": self.gt_voiced + self.gt_unvoiced,
        }


def read_ground_truth(path: Path) -> np.ndarray:
    """[T] Hz from a ``time_s,f0_hz`` CSV; checks the 10 ms grid."""
    data = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    if data.shape[1] != 2 or not np.allclose(data[:, 0], np.arange(len(data)) * 0.01, atol=1e-6):
        raise ValueError(f"{path}: expected rows `time_s,f0_hz` every 10 ms from 0")
    return data[:, 1]


def group_of(path: Path) -> str:
    return "noisy" if "snr" in path.stem else "clean"


def method_options(method: str, args: argparse.Namespace) -> tuple[PitchOptions | None, str]:
    """Options for a method, or None with the reason it is skipped."""
    if method == "rmvpe":
        if args.rmvpe_checkpoint is None:
            return None, (
                "no trained rmvpe.pt here: only the random-weight parity fixture rmvpe_small exists, whose "
                "output is meaningless as pitch; pass --rmvpe-checkpoint with the real weights"
            )
        return PitchOptions("rmvpe", checkpoint=args.rmvpe_checkpoint), ""
    if method == "fcpe":
        return PitchOptions("fcpe", checkpoint=args.fcpe_checkpoint), ""
    return PitchOptions(method), ""


def run_method(method: str, options: PitchOptions, files: list[Path], console: Console) -> dict:
    """Score one method over all files; returns per-group and per-file summaries."""
    estimator = load_pitch_estimator(options, threads=THREADS) if method in ("rmvpe", "fcpe", "crepe") else None
    groups = {g: FrameCounts() for g in GROUPS}
    per_file: dict[str, dict] = {}
    warmed = False
    for wav in files:
        gt = read_ground_truth(wav.with_suffix("").with_suffix(".f0.csv"))
        audio = decode_audio(wav)
        if not warmed:  # first call pays one-off costs (thread pools, caches); not timed
            extract_f0(audio.samples[: audio.sample_rate], audio.sample_rate, options, GT_GRID, estimator=estimator)
            warmed = True
        start = time.perf_counter()
        track = extract_f0(audio.samples, audio.sample_rate, options, GT_GRID, n_frames=gt.size, estimator=estimator)
        seconds = time.perf_counter() - start
        one = FrameCounts()
        one.add(track.f0_hz.astype(np.float64), gt, seconds, audio.duration_s)
        groups[group_of(wav)].add(track.f0_hz.astype(np.float64), gt, seconds, audio.duration_s)
        per_file[wav.name] = one.summary()
        console.log(f"{method:8s} {wav.name}: RPA {per_file[wav.name]['rpa']}", highlight=False)
    return {"groups": {g: c.summary() for g, c in groups.items()}, "files": per_file}


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for dist in ("numpy", "pyworld", "praat-parselmouth", "onnxruntime", "torch", "torchfcpe", "torchcrepe", "soxr"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def to_markdown(report: dict) -> str:
    lines = [
        "# F0 accuracy on the sung corpus",
        "",
        f"{report['created']}; corpus `{report['corpus']}` ({report['n_files']} files, "
        f"{report['audio_seconds']:.1f} s); grid 10 ms; one thread per method; so-vits-svc defaults (50-1100 Hz, threshold 0.05, pm voicing 0.6).",
        f"CPU: {report['cpu']}; {', '.join(f'{k} {v}' for k, v in report['versions'].items())}.",
        "",
        "| method | files | RPA | RCA | V recall | V false alarm | median cents | p90 cents | s / audio s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for method, result in report["methods"].items():
        if "skipped" in result:
            continue
        for group, s in result["groups"].items():
            lines.append(
                f"| {method} | {group} | {s['rpa']} | {s['rca']} | {s['voicing_recall']} | "
                f"{s['voicing_false_alarm']} | {s['median_cents']} | {s['p90_cents']} | {s['seconds_per_audio_second']} |"
            )
    measured = [m for m, r in report["methods"].items() if "files" in r]
    if measured:
        files = list(report["methods"][measured[0]]["files"])
        lines += ["", "Per file, RPA / voicing recall / median cents:", ""]
        lines += ["| file | " + " | ".join(measured) + " |", "|---|" + "---|" * len(measured)]
        for name in files:
            cells = []
            for m in measured:
                s = report["methods"][m]["files"][name]
                cells.append(f"{s['rpa']} / {s['voicing_recall']} / {s['median_cents']}")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    skipped = [(m, r["skipped"]) for m, r in report["methods"].items() if "skipped" in r]
    if skipped:
        lines += ["", "Not measured:", ""] + [f"* **{m}**: {why}" for m, why in skipped]
    return "\n".join(lines) + "\n"


def print_table(report: dict, console: Console) -> None:
    table = Table(title="F0 accuracy, sung corpus (10 ms grid)")
    for name in ("method", "files", "RPA", "RCA", "V recall", "V FA", "median ¢", "p90 ¢", "s / audio s"):
        table.add_column(name, justify="left" if name in ("method", "files") else "right")
    for method, result in report["methods"].items():
        if "skipped" in result:
            table.add_row(method, "-", *["skipped"] + [""] * 6)
            continue
        for group, s in result["groups"].items():
            table.add_row(
                method, group, *(str(s[k]) for k in (
                    "rpa", "rca", "voicing_recall", "voicing_false_alarm", "median_cents", "p90_cents",
                    "seconds_per_audio_second",
                ))
            )
    console.print(table)
    for method, result in report["methods"].items():
        if "skipped" in result:
            console.print(f"[yellow]{method} skipped:[/yellow] {result['skipped']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.f0_accuracy", description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="folder of NAME.wav + NAME.f0.csv")
    parser.add_argument("--methods", default=",".join(ALL_METHODS), help=f"comma list of {', '.join(ALL_METHODS)}")
    parser.add_argument("--rmvpe-checkpoint", type=Path, help="trained rmvpe.pt or exported rmvpe .onnx")
    parser.add_argument("--fcpe-checkpoint", type=Path, help="exported fcpe .onnx (default: torchfcpe weights, torch side)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for f0_accuracy.json / .md")
    args = parser.parse_args(argv)
    console = Console(stderr=True, soft_wrap=True)
    files = sorted(p for p in args.corpus.glob("*.wav") if p.with_suffix("").with_suffix(".f0.csv").is_file())
    if not files:
        console.print(f"[red]error:[/red] no NAME.wav with NAME.f0.csv in {args.corpus}")
        return 1
    try:
        import torch  # the torch side only; the runtime never needs it

        torch.set_num_threads(THREADS)
    except ImportError:
        pass
    report: dict = {
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "corpus": str(args.corpus),
        "n_files": len(files),
        "audio_seconds": 0.0,
        "cpu": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared)",
        "versions": versions(),
        "methods": {},
    }
    for method in [m.strip() for m in args.methods.split(",") if m.strip()]:
        if method not in ALL_METHODS:
            console.print(f"[red]error:[/red] unknown method {method!r}; choose from {', '.join(ALL_METHODS)}")
            return 2
        options, reason = method_options(method, args)
        if options is None:
            report["methods"][method] = {"skipped": reason}
            continue
        try:
            report["methods"][method] = run_method(method, options, files, console)
        except (ClassicPitchUnavailable, PitchExtractionError, FileNotFoundError) as error:
            report["methods"][method] = {"skipped": f"{type(error).__name__}: {error}"}
    report["audio_seconds"] = float(sum(decode_audio(f).duration_s for f in files))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "f0_accuracy.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "f0_accuracy.md").write_text(to_markdown(report))
    print_table(report, Console(width=132))
    console.print(f"wrote {args.out / 'f0_accuracy.json'} and {args.out / 'f0_accuracy.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
