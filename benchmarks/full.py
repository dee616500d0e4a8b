"""The published table: every section in its own `benchmarks.e2e` process, merged into benchmarks/results/.

    python -m benchmarks.full [--out benchmarks/results] [--only NAME ...]

writes <out>/e2e.json, e2e.md and e2e_rtf.png (and one folder per step under <out>/runs/).

Each step writes its own folder under <out>/runs/; a step that fails is reported and the
others still run. Sizes, lengths and repetitions are chosen to fit about 40 minutes on a
2-core CPU shared with other work; edit STEPS to change them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.report import merge, write_reports

STEPS: dict[str, list[str]] = {
    # whole-file throughput at 2 threads (the 2-core target); add "--variants", "spin" (benchmarks/tuning.py)
    # to interleave a tuned variant of ours
    "throughput_t2": ["--sizes", "standard", "tiny", "--sections", "throughput", "--lengths", "5", "10",
                      "--reps", "3", "--threads", "2", "--precisions", "int8"],
    # the standard rows once more, minutes later: how far the shared machine's load moves them
    "throughput_t2_again": ["--sizes", "standard", "--sections", "throughput", "--lengths", "5", "10",
                            "--reps", "3", "--threads", "2", "--precisions", "int8"],
    # the same at 1 thread each: no thread oversubscription on a loaded machine
    "throughput_t1": ["--sizes", "standard", "--sections", "throughput", "--lengths", "10", "--reps", "3",
                      "--threads", "1", "--precisions", "int8"],
    "throughput_t1_again": ["--sizes", "standard", "--sections", "throughput", "--lengths", "10", "--reps", "3",
                            "--threads", "1", "--precisions", "int8"],
    # RTF against input length, ours only (torch eager at 30 s would take minutes per repetition)
    "length_ours": ["--sizes", "standard", "--sections", "throughput", "--lengths", "30", "--reps", "1",
                    "--threads", "2", "--no-torch", "--precisions", "int8"],
    # each graph against its 1-D -> 2-D convolution rewrite: only informative on a bundle exported before
    # svc-export applied that pass itself (manifest exporter.graph_passes)
    "graphs": ["--sizes", "standard", "--sections", "graphs", "--reps", "6"],
    "tuning": ["--sizes", "standard", "--sections", "tuning", "--tuning-seconds", "5", "--reps", "3", "--threads", "2"],
    "batch": ["--sizes", "tiny", "--sections", "batch", "--batch", "1", "4", "16", "--batch-file-seconds", "2",
              "--threads", "2"],
    "streaming": ["--sizes", "standard", "--sections", "streaming", "--blocks", "32", "100", "500",
                  "--stream-max-blocks", "10", "--threads", "2"],
    # the same with a short left context (the streaming converter re-runs every graph over its context)
    "streaming_ctx": ["--sizes", "standard", "--sections", "streaming", "--blocks", "32", "100", "500",
                      "--stream-max-blocks", "10", "--threads", "2", "--stream-context", "0.1"],
    # the generator with a short left context, the encoder with the default one (generator_context_seconds)
    "streaming_gen_ctx": ["--sizes", "standard", "--sections", "streaming", "--blocks", "32", "100", "500",
                          "--stream-max-blocks", "10", "--threads", "2", "--stream-generator-context", "0.1"],
    "memory": ["--sizes", "standard", "--sections", "memory", "coldstart", "--memory-lengths", "10",
               "--memory-long", "60", "--coldstart-reps", "2", "--threads", "2"],
    # ours only at 5 min (about 12 minutes on the shared box)
    "memory_long": ["--sizes", "standard", "--sections", "memory", "--memory-lengths", "300", "--memory-long", "0",
                    "--no-torch", "--threads", "2"],
    "memory_micro": ["--sizes", "micro", "--sections", "memory", "--memory-lengths", "10", "60", "--memory-long", "300",
                     "--threads", "2"],
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--only", nargs="*", default=None, choices=sorted(STEPS))
    parser.add_argument("--merge-only", action="store_true", help="re-merge the step folders already there")
    args = parser.parse_args(argv)
    runs = args.out / "runs"
    chosen = args.only or list(STEPS)
    for name in [] if args.merge_only else chosen:
        started = time.time()
        sys.stderr.write(f"== {name}\n")
        result = subprocess.run([sys.executable, "-m", "benchmarks.e2e", *STEPS[name], "--no-plot",
                                 "--out", str(runs / name)])
        sys.stderr.write(f"== {name}: exit {result.returncode} after {time.time() - started:.0f} s\n")
    parts = []
    for name in STEPS:
        path = runs / name / "results.json"
        if path.is_file():
            parts.append(json.loads(path.read_text(encoding="utf-8")))
    if parts:
        write_reports(merge(parts), args.out, stem="e2e")
        sys.stderr.write(f"merged {len(parts)} runs into {args.out}\n")


if __name__ == "__main__":
    main()
