"""Acceptance run over the bad-input corpus: every file converts or is refused as MANIFEST.tsv expects.

    python -m benchmarks.bad_inputs                          # fixture bundle (exported once, needs torch)
    python -m benchmarks.bad_inputs --bundle BUNDLE_DIR --speaker NAME [--corpus DIR]

Each file goes through what `svc-run convert` does (decode, checks, conversion, atomic
write into a temporary folder). A file is "accept" when an output was written, and then
it is also checked: finite samples, duration equal to the input's to the sample at the
model rate. Prints a table of expected vs actual with the reason or note; exits 1 on any
mismatch.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
from rich.console import Console
from rich.table import Table

from svc_runtime.audio import resampled_length
from svc_runtime.pipeline.batch import BatchRunner, FileJob
from svc_runtime.pipeline.convert import Converter
from svc_runtime.pipeline.options import ConvertOptions

DEFAULT_CORPUS = Path("/work/shared/corpus/bad")


def read_manifest(corpus: Path) -> list[dict[str, str]]:
    with open(corpus / "MANIFEST.tsv", encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def check_output(source: Path, target: Path, model_rate: int) -> str:
    """'' when the output is finite and as long as the input; else what is wrong."""
    out, sr = soundfile.read(target, dtype="float32")
    if sr != model_rate:
        return f"output rate {sr} != model rate {model_rate}"
    if not np.all(np.isfinite(out)):
        return "non-finite output"
    info = soundfile.info(str(source))
    with soundfile.SoundFile(str(source)) as f:
        frames_read = len(f.read(dtype="float32"))
    expected = resampled_length(frames_read, info.samplerate, model_rate)
    if len(out) != expected:
        return f"output {len(out)} samples, input is {expected} at the model rate"
    return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--bundle", type=Path, default=None, help="default: the test fixture bundle")
    parser.add_argument("--speaker", default="alice")
    parser.add_argument("--f0-method", default="pm")
    args = parser.parse_args(argv)
    console = Console(width=160)
    from svc_runtime.bundle.bundle import Bundle

    if args.bundle is None:
        console.print("[dim]exporting the test fixture bundle (tests/pipeline_fixture.py)...[/dim]")
        from tests.pipeline_fixture import small_bundle_dir

        args.bundle = small_bundle_dir()
    bundle = Bundle.load(args.bundle)
    converter = Converter(bundle, ConvertOptions(speaker=args.speaker, f0_method=args.f0_method))
    rows = read_manifest(args.corpus)
    table = Table(title=f"bad inputs: {args.corpus}")
    for column in ("file", "expected", "actual", "match", "reason / note"):
        table.add_column(column, overflow="fold")
    mismatches = 0
    with tempfile.TemporaryDirectory(prefix="svc-bad-inputs-") as tmp:
        jobs = [FileJob(args.corpus / r["filename"], Path(tmp) / f"{i:02d}.wav") for i, r in enumerate(rows)]
        t0 = time.perf_counter()
        results = {r.job.source: r for r in BatchRunner(converter).run(jobs)}
        wall = time.perf_counter() - t0
        for row, job in zip(rows, jobs):
            result = results[job.source]
            actual = "accept" if result.status == "converted" else "reject"
            detail = result.reason or "; ".join(result.notes)
            if actual == "accept":
                problem = check_output(job.source, job.target, converter.sr)
                if problem:
                    actual, detail = "broken", problem
                elif not detail:
                    detail = f"converted, {result.audio_seconds:.2f} s, length exact"
            ok = actual == row["expected"]
            mismatches += not ok
            table.add_row(row["filename"], row["expected"], actual, "yes" if ok else "[red]NO[/red]", detail)
    console.print(table)
    console.print(f"{len(rows) - mismatches}/{len(rows)} as expected; wall {wall:.1f} s")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
