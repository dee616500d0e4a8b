"""Per-block time of the C host's block API against Python's StreamingConverter, same bundle and blocks.

    python hosts/c/bench/block_overhead.py BUILD_DIR BUNDLE [--blocks N] [--block-ms MS] [--reps R]

BUILD_DIR holds libsvchost.so (cmake -S hosts/c -B BUILD_DIR). With --tiny, a copy of BUNDLE whose converter graph
is a stand-in with the real inputs and outputs and almost no compute (tests/test_c_host.py's) is used, so the
times are the hosts' own overhead per block (resampling the window to 16 kHz, noise, buffers, the graph call). Prints one row
per host: median and 90th percentile ms per block over R interleaved repetitions of N blocks (after 20 warm-up
blocks), one ONNX Runtime thread each, and the load average.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("build", type=Path)
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--tiny", action="store_true", help="replace the converter graph by the near-empty stand-in")
    ap.add_argument("--blocks", type=int, default=100)
    ap.add_argument("--block-ms", type=float, default=20.0)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--speaker", default=None)
    args = ap.parse_args()

    from tests.test_c_host import tiny_copy

    bundle = tiny_copy(args.bundle, Path(tempfile.mkdtemp(prefix="tiny-")) / "bundle") if args.tiny else args.bundle
    speaker = args.speaker or next(iter(json.loads((bundle / "manifest.json").read_text())["model"]["speakers"]))

    from svc_runtime import Bundle
    from svc_runtime.bundle.sessions import ProviderConfig
    from svc_runtime.streaming import StreamingConverter, StreamingOptions

    sr = json.loads((bundle / "manifest.json").read_text())["model"]["sampling_rate"]
    block = int(round(args.block_ms * sr / 1000))
    py_bundle = Bundle.load(bundle, ProviderConfig(provider="cpu", intra_op_threads=1))

    lib = ctypes.CDLL(str(args.build / "libsvchost.so"))
    lib.svc_host_open.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
    lib.svc_host_process_block.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    lib.svc_host_last_error.restype = ctypes.c_char_p
    lib.svc_host_last_error.argtypes = [ctypes.c_void_p]
    handle = ctypes.c_void_p()
    options = json.dumps({"speaker": speaker, "block_size": block, "threads": 1}).encode()
    if lib.svc_host_open(str(bundle).encode(), options, ctypes.byref(handle)) != 0:
        raise SystemExit(lib.svc_host_last_error(None).decode())

    x = (np.sin(np.arange((args.blocks + 20) * block) * 0.05) * 0.3).astype(np.float32)
    blocks = [np.ascontiguousarray(x[i * block : (i + 1) * block]) for i in range(args.blocks + 20)]
    out = np.zeros(block, np.float32)

    def run_c() -> list[float]:
        times = []
        for i, b in enumerate(blocks):
            t = time.perf_counter()
            lib.svc_host_process_block(handle, b.ctypes.data, out.ctypes.data, block)
            if i >= 20:
                times.append(time.perf_counter() - t)
        return times

    py = StreamingConverter(py_bundle, block, StreamingOptions(speaker=speaker))

    def run_py() -> list[float]:
        times = []
        py.reset()
        for i, b in enumerate(blocks):
            t = time.perf_counter()
            py.process(b)
            if i >= 20:
                times.append(time.perf_counter() - t)
        return times

    results: dict[str, list[float]] = {"C (libsvchost)": [], "Python (StreamingConverter)": []}
    for _ in range(args.reps):
        results["C (libsvchost)"] += run_c()
        results["Python (StreamingConverter)"] += run_py()
    load = os.getloadavg()
    print(f"block {block} samples ({args.block_ms} ms at {sr} Hz), {args.blocks} blocks x {args.reps} reps, "
          f"load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    for name, times in results.items():
        if times:
            ms = sorted(1000 * t for t in times)
            print(f"{name:30s} median {statistics.median(ms):7.3f} ms  p90 {ms[int(0.9 * len(ms))]:7.3f} ms")


if __name__ == "__main__":
    main()
