"""Subprocess probes: peak memory of one conversion, and cold start to the first converted second.

Run by `benchmarks.e2e` in a fresh interpreter each, so nothing is shared or already loaded:

    python -m benchmarks.probe memory --impl ours|torch --size SIZE --input WAV --threads N
    python -m benchmarks.probe coldstart --impl ours|torch --size SIZE --input WAV --threads N

Each prints one JSON line. `memory`: peak resident set (VmHWM, MiB; ru_maxrss would carry the parent's peak across exec), the resident set
after loading the models, the peak of Python-heap allocations during the conversion
(tracemalloc; numpy buffers are included, ONNX Runtime's and torch's own allocators are
not) and the wall time. `coldstart`: wall-clock time (time.time()) at which the first
second of converted audio exists; the parent subtracts the time it started the process.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path


def _rss_now_mib() -> float:
    with open("/proc/self/statm", encoding="ascii") as handle:
        pages = int(handle.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def _peak_rss_mib() -> float:
    """High-water resident set of this process (VmHWM).

    Not ru_maxrss: Linux carries ru_maxrss across fork + exec, so a child of a big parent
    would report the parent's peak. VmHWM belongs to this process's own address space.
    """
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _load(impl: str, size: str, threads: int):
    from benchmarks.models import ensure_models

    models = ensure_models(size, bundle=impl == "ours")
    if impl == "ours":
        from benchmarks.ours import OursConverter, SessionTuning

        return OursConverter(models.bundle, pitch=models.pitch, tuning=SessionTuning(intra_op_threads=threads))
    from benchmarks.torch_eager import TorchEagerConverter

    return TorchEagerConverter(models, threads=threads)


def memory(args: argparse.Namespace) -> dict:
    import tracemalloc

    from benchmarks.timing import StageTimer

    converter = _load(args.impl, args.size, args.threads)
    loaded_rss = _rss_now_mib()
    loaded_peak = _peak_rss_mib()
    tracemalloc.start()
    t0 = time.perf_counter()
    seconds = converter.convert_file(Path(args.input), Path(args.output), StageTimer())
    wall = time.perf_counter() - t0
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "impl": args.impl, "size": args.size, "audio_seconds": seconds, "wall_seconds": wall,
        "rss_after_load_mib": loaded_rss, "peak_rss_before_convert_mib": loaded_peak,
        "peak_rss_mib": _peak_rss_mib(), "tracemalloc_peak_mib": traced_peak / 2**20,
    }


def coldstart(args: argparse.Namespace) -> dict:
    import numpy as np
    import soundfile

    from benchmarks.timing import StageTimer

    t_import = time.time()
    converter = _load(args.impl, args.size, args.threads)
    t_loaded = time.time()
    data, sr = soundfile.read(args.input, dtype="float32", always_2d=True)
    first = np.ascontiguousarray(data.mean(axis=1)[:sr])
    if args.impl == "ours":
        audio = converter.convert_array(first, sr)
    else:
        audio = converter.convert_array(first, sr, StageTimer())
    t_done = time.time()
    if audio.size == 0 or not np.all(np.isfinite(audio)):
        raise RuntimeError("cold start conversion produced no audio")
    return {"impl": args.impl, "size": args.size, "t_imported": t_import, "t_loaded": t_loaded, "t_first_second": t_done}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="memory / cold-start probe (one JSON line on stdout)")
    parser.add_argument("what", choices=("memory", "coldstart"))
    parser.add_argument("--impl", choices=("ours", "torch"), required=True)
    parser.add_argument("--size", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", default=None, help="converted file (default: a temporary folder)")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="svc-probe-") as tmp:
        if args.output is None:
            args.output = str(Path(tmp) / "converted.wav")
        result = memory(args) if args.what == "memory" else coldstart(args)
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
