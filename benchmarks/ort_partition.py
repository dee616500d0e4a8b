"""`python -m benchmarks.ort_partition`: why ONNX Runtime leaves a core idle on the generator.

One single-threaded, profiled run of the generator graph; each NCHWc convolution's time is
split the way MLAS splits it over threads. MLAS cuts a convolution into
batch x groups x ceil(out_channels / 64) x output_rows work units (64 = 16-float AVX-512
blocks x 4-block filter sets) and deals them out statically. Our 1-D convolutions run as 2-D
with one row (H = 1, time on W), so a convolution with <= 64 output channels is one unit on
one thread (HiFiGAN's last upsampling stages), 192 channels is 3 units (2:1). The report: time per
unit count and the best 2-thread time that this partition allows (other ops assumed to split
evenly), as "at most N cores busy". The numbers are ratios of one run, so a loaded machine
changes them little (unlike a 2-thread measurement, where a descheduled worker's share is taken
over by the main thread).

The fix is in the export (`svc_export.graphs.DecoderHalves`): those stages run two halves of the window on
the batch axis. Standard generator, 5 s, 2026-12-06: before, 0.485 s of 1.68 s in one-unit convolutions, at
most 1.55 cores busy; after, no one-unit convolution left, at most 1.99 cores busy (1.75 s on one thread:
the halo and the gathers cost 4 %).
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import tempfile
from pathlib import Path

import onnxruntime as ort

from benchmarks.backends import generator_bundle, generator_feeds
from svc_export.graphs import MLAS_FILTER_SET
from svc_runtime.bundle.bundle import Bundle


def partition(graph: Path, feeds: dict, threads: int = 2) -> dict:
    """Profile one run at 1 thread; time per MLAS work-unit count and the static-partition bound."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.enable_profiling = True
    options.enable_cpu_mem_arena = False
    with tempfile.TemporaryDirectory() as folder:
        options.profile_file_prefix = str(Path(folder) / "profile")
        session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        session.run(None, feeds)
        session.run(None, feeds)
        events = json.loads(Path(session.end_profiling()).read_text())
    runs = [e for e in events if e.get("name") == "model_run"]
    nodes = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")
             and e["ts"] >= runs[-1]["ts"]]
    total = bound = 0.0
    by_units: dict[int, float] = collections.Counter()
    for e in nodes:
        seconds = e["dur"] / 1e6
        total += seconds
        shapes = e["args"].get("output_type_shape") or [{}]
        shape = next(iter(shapes[0].values()), [])
        if e["args"]["op_name"] == "Conv" and len(shape) == 4:
            units = shape[0] * math.ceil(shape[1] / MLAS_FILTER_SET) * shape[2]
            by_units[units] += seconds
            bound += seconds * math.ceil(units / threads) / units
        else:
            bound += seconds / threads
    return {"one_thread_s": total, "ideal_s": total / threads, "static_bound_s": bound,
            "cores_busy_at_most": total / bound,
            "conv_s_by_units": {str(k): round(v, 3) for k, v in sorted(by_units.items())}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graph", type=Path, default=None, help="a generator .onnx (default: the standard one)")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    bundle_dir = generator_bundle("standard")
    bundle = Bundle.load(bundle_dir, roles=())
    graph = args.graph or bundle_dir / bundle.manifest.graphs["generator"].file
    report = partition(graph, generator_feeds(bundle, args.seconds), args.threads)
    print(f"{graph}: {args.seconds:g} s of audio, one thread {report['one_thread_s']:.2f} s")
    print(f"NCHWc convolution seconds by MLAS work units: {report['conv_s_by_units']}")
    print(f"{args.threads} threads: ideal {report['ideal_s']:.2f} s, static partition bound "
          f"{report['static_bound_s']:.2f} s -> at most {report['cores_busy_at_most']:.2f} cores busy")


if __name__ == "__main__":
    main()
