"""What a host does per window outside ONNX Runtime, and what it costs (issue 13's "thin host" check).

`python -m benchmarks.host_work [--size standard|tiny|micro] [--seconds 10] [--blocks-ms 100 200 500]`

Whole-file conversion: the conversion graph's runs are timed apart from everything around them; the host's
per-window work is listed item by item (cutting the window and its 16 kHz audio, drawing the noise,
speaker weights, stacking the feeds, crossfading into the output) and the preparation before the windows
(resampling, DC filter, slicing, 16 kHz copies, host F0 when the F0 method is a classic one). Streaming:
the same per block. Prints a table and writes JSON (`--out`).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from benchmarks.models import ensure_models


class Clock:
    """Wall seconds and call counts per named item."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    @contextmanager
    def item(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - t0
            self.calls[name] += 1

    def wrap(self, owner, attribute: str, name: str) -> None:
        original = getattr(owner, attribute)

        def timed(*args, **kwargs):
            with self.item(name):
                return original(*args, **kwargs)

        setattr(owner, attribute, timed)


def _tone(seconds: float, sr: int) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    f0 = 220.0 * 2.0 ** (0.3 * np.sin(2 * np.pi * 0.5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    return (0.2 * sum(np.sin(k * phase) / k for k in (1, 2, 3))).astype(np.float32)


def whole_file(bundle_dir: Path, seconds: float, f0_method: str | None, reps: int, threads: int) -> dict:
    """Per-window host work of `Converter` vs the graph runs, for one `seconds` input (median of `reps`)."""
    import svc_runtime.pipeline.convert as convert
    import svc_runtime.pipeline.window as window
    from svc_runtime.audio.decode import DecodedAudio
    from svc_runtime.bundle.bundle import Bundle
    from svc_runtime.bundle.sessions import ProviderConfig
    from svc_runtime.pipeline.noise import NoiseStream
    from svc_runtime.pipeline.options import ConvertOptions

    bundle = Bundle.load(bundle_dir, ProviderConfig(provider="cpu", intra_op_threads=threads))
    speaker = next(iter(bundle.speakers))
    conv = convert.Converter(bundle, ConvertOptions(speaker=speaker, f0_method=f0_method))
    x = _tone(seconds, bundle.sampling_rate)
    clock = Clock()
    clock.wrap(bundle, "run", "graph run (ONNX Runtime)")
    clock.wrap(NoiseStream, "prior", "noise: prior")
    clock.wrap(NoiseStream, "sine", "noise: sine")
    clock.wrap(conv, "_speaker_weights", "speaker weights")
    clock.wrap(conv, "_place", "crossfade into the output")
    clock.wrap(window, "window_feeds", "stack feeds (incl. noise)")
    runs = []
    for rep in range(reps + 1):  # the first run warms the sessions up and is not counted
        clock.seconds.clear()
        clock.calls.clear()
        t0 = time.perf_counter()
        with clock.item("prepare (resample, DC, slice, 16 kHz, host F0)"):
            prepared = conv.prepare(DecodedAudio(x, bundle.sampling_rate, 1))
        with clock.item("render"):
            conv.render([prepared])
        wall = time.perf_counter() - t0
        if rep:
            runs.append({"wall": wall, "seconds": dict(clock.seconds), "calls": dict(clock.calls)})
    return _summary(runs, seconds, "whole file")


def _summary(runs: list[dict], seconds: float, what: str) -> dict:
    names = sorted({k for r in runs for k in r["seconds"]})
    med = {k: float(np.median([r["seconds"].get(k, 0.0) for r in runs])) for k in names}
    calls = {k: runs[0]["calls"].get(k, 0) for k in names}
    wall = float(np.median([r["wall"] for r in runs]))
    return {"what": what, "audio_seconds": seconds, "wall_s": wall, "rtf": wall / seconds, "items_s": med,
            "calls": calls}


def streaming(bundle_dir: Path, block_ms: float, seconds: float, f0_method: str | None, threads: int) -> dict:
    """Per-block host work of `StreamingConverter` vs its one graph run per block."""
    import svc_runtime.streaming as streaming_module
    from svc_runtime.bundle.bundle import Bundle
    from svc_runtime.bundle.sessions import ProviderConfig

    bundle = Bundle.load(bundle_dir, ProviderConfig(provider="cpu", intra_op_threads=threads))
    speaker = next(iter(bundle.speakers))
    block = int(round(bundle.sampling_rate * block_ms / 1000))
    conv = streaming_module.StreamingConverter(
        bundle, block, streaming_module.StreamingOptions(speaker=speaker, f0_method=f0_method))
    x = _tone(seconds, bundle.sampling_rate)
    clock = Clock()
    clock.wrap(bundle, "run", "graph run (ONNX Runtime)")
    clock.wrap(streaming_module, "resample", "resample window to 16 kHz")
    clock.wrap(conv, "_emit", "crossfade + output FIFO")
    if conv.f0_source is not None:
        clock.wrap(conv, "f0_source", "host F0")
    per_block = []
    for i in range(0, len(x) - block + 1, block):
        t0 = time.perf_counter()
        conv.process(x[i : i + block])
        per_block.append(time.perf_counter() - t0)
    n = len(per_block)
    warm = per_block[2:] or per_block
    out = _summary([{"wall": sum(per_block), "seconds": dict(clock.seconds), "calls": dict(clock.calls)}],
                   n * block / bundle.sampling_rate, f"stream {block_ms:g} ms")
    out["block_ms"] = block_ms
    out["per_block_ms_median"] = 1000 * float(np.median(warm))
    out["compute_over_block"] = float(np.median(warm)) / (block / bundle.sampling_rate)
    out["window_frames"] = conv.window
    return out


def _print(row: dict) -> None:
    print(f"\n{row['what']}: {row['audio_seconds']:.1f} s of audio, wall {row['wall_s']:.3f} s (RTF {row['rtf']:.3f})")
    if "per_block_ms_median" in row:
        print(f"  per block: {row['per_block_ms_median']:.1f} ms median, compute/block {row['compute_over_block']:.2f},"
              f" window {row['window_frames']} frames")
    graph = row["items_s"].get("graph run (ONNX Runtime)", 0.0)
    print(f"  {'item':<48} {'total ms':>9} {'calls':>6} {'ms/call':>8} {'% wall':>7}")
    for name, value in sorted(row["items_s"].items(), key=lambda kv: -kv[1]):
        if name == "render":
            continue
        calls = max(row["calls"].get(name, 1), 1)
        print(f"  {name:<48} {1000 * value:9.1f} {calls:6d} {1000 * value / calls:8.2f} {100 * value / row['wall_s']:6.1f}%")
    outside = row["wall_s"] - graph
    print(f"  {'everything outside the graph runs':<48} {1000 * outside:9.1f} {'':6} {'':8} {100 * outside / row['wall_s']:6.1f}%")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="tiny", choices=("standard", "tiny", "micro"))
    parser.add_argument("--bundle", type=Path, default=None, help="a bundle folder instead of the benchmark model")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--blocks-ms", type=float, nargs="*", default=[100.0, 200.0, 500.0])
    parser.add_argument("--f0-method", default=None, help="host F0 method (default: the pitch network in the graph)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    bundle_dir = args.bundle or ensure_models(args.size).bundle
    import os

    print(f"{platform.processor() or platform.machine()}, load {os.getloadavg()[0]:.1f}, bundle {bundle_dir}")
    rows = [whole_file(bundle_dir, args.seconds, args.f0_method, args.reps, args.threads)]
    _print(rows[0])
    for block_ms in args.blocks_ms:
        rows.append(streaming(bundle_dir, block_ms, min(args.seconds, 5.0), args.f0_method, args.threads))
        _print(rows[-1])
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"load": os.getloadavg()[0], "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
