"""Peak resident memory of `svc-run convert` against input length (issue 14: memory that does not grow).

    python -m benchmarks.long_file_memory [--size micro] [--minutes 1 20] [--kind corpus continuous]
                                          [--in-memory] [--out benchmarks/results/long_file_memory.json]

For each input kind and length, writes a 44.1 kHz mono WAV and runs `svc-run convert` on it in a fresh
process, which reports its own peak RSS (VmHWM, via getrusage) and wall time when it ends. Kinds: `corpus`
(speech and sung files of the corpus concatenated, with their pauses; synthetic speech-like audio with
pauses without the corpus), `repeated` (the corpus's first minute over and over: the same slices at every
length) and `continuous` (a vibrato tone with no pause at all: one voiced slice as long as the file).
What is left of the peak after the blocks is the graph's run over the longest window, which grows with
the longest voiced slice up to `max_window_seconds` (30 s), not with the file: compare `repeated`
(same content) and `corpus` (later files hold 30+ s slices the first minute lacks). Files above `LONG_FILE_SECONDS` take the
blockwise path; `--in-memory` also runs each file with that limit raised, for the before/after ratio.
Prints a table with each peak relative to the shortest input's and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

from benchmarks.inputs import SAMPLE_RATE, concatenated
from benchmarks.models import ensure_models

CLI_CHILD = """
import json, resource, sys, time
sys.argv = ["svc-run", *{argv!r}]
from svc_runtime.cli import main
t0 = time.perf_counter()
try:
    main()
except SystemExit as e:
    code = e.code
else:
    code = 0
print(json.dumps({{"exit": code, "seconds": time.perf_counter() - t0,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""
"""`svc-run convert` in this process, then its peak RSS (the default path: blockwise above the limit)."""

IN_MEMORY_CHILD = """
import json, resource, time
from svc_runtime.audio.decode import decode_audio
from svc_runtime.audio.write import write_audio_atomic
from svc_runtime.bundle.bundle import Bundle
from svc_runtime.pipeline import Converter, ConvertOptions
t0 = time.perf_counter()
conv = Converter(Bundle.load({bundle!r}), ConvertOptions())
prepared = conv.prepare(decode_audio({source!r}))
write_audio_atomic({target!r}, conv.render([prepared])[0], conv.sr)
print(json.dumps({{"exit": 0, "seconds": time.perf_counter() - t0,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""
"""The whole file held in memory (`Converter.prepare` + `render`), as every file was converted before."""


def continuous_tone(seconds: float) -> np.ndarray:
    """A voiced vibrato tone with harmonics and no pause: [n] float32 at 44.1 kHz."""
    n = int(round(seconds * SAMPLE_RATE))
    out = np.empty(n, np.float32)
    phase = 0.0
    for a in range(0, n, 1 << 20):  # in blocks: the parent should not hold float64 copies of 20 minutes
        t = np.arange(a, min(n, a + (1 << 20)), dtype=np.float64) / SAMPLE_RATE
        f0 = 200.0 * 2 ** (0.25 * np.sin(2 * np.pi * 0.2 * t) + 0.02 * np.sin(2 * np.pi * 5.5 * t))
        ph = phase + np.cumsum(f0) / SAMPLE_RATE
        phase = float(ph[-1])
        out[a : a + t.shape[0]] = 0.3 * np.sin(2 * np.pi * ph) + 0.1 * np.sin(4 * np.pi * ph)
    return out


def run_one(bundle: Path, source: Path, out_dir: Path, in_memory: bool) -> dict:
    if in_memory:
        code = IN_MEMORY_CHILD.format(bundle=str(bundle), source=str(source), target=str(out_dir / "in_memory.wav"))
    else:
        argv = ["convert", str(source), "--bundle", str(bundle), "--out-dir", str(out_dir), "--overwrite"]
        code = CLI_CHILD.format(argv=argv)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"svc-run convert failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="micro", choices=("micro", "tiny", "standard"))
    ap.add_argument("--minutes", type=float, nargs="+", default=[1.0, 20.0])
    ap.add_argument("--kind", nargs="+", default=["corpus", "repeated", "continuous"], choices=("corpus", "repeated", "continuous"))
    ap.add_argument("--in-memory", action="store_true", help="also run each file held whole in memory")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    models = ensure_models(args.size)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for kind in args.kind:
            for minutes in sorted(args.minutes):
                source = tmp / f"{kind}_{minutes:g}min.wav"
                if kind == "corpus":
                    audio, origin = concatenated(minutes * 60.0)
                elif kind == "repeated":
                    one, origin = concatenated(60.0)
                    audio = np.tile(one, int(np.ceil(minutes)))[: int(minutes * 60 * SAMPLE_RATE)]
                    origin = f"first minute of: {origin}, repeated"
                else:
                    audio, origin = continuous_tone(minutes * 60.0), "vibrato tone, no pause"
                soundfile.write(source, audio, SAMPLE_RATE, subtype="PCM_16")
                del audio
                for in_memory in (False, True) if args.in_memory else (False,):
                    result = run_one(models.bundle, source, tmp / "out", in_memory)
                    rows.append(dict(kind=kind, minutes=minutes, path="in memory" if in_memory else "default",
                                     source=origin, **result))
                    print(f"{kind:10s} {minutes:5g} min  {rows[-1]['path']:9s}  peak RSS "
                          f"{result['peak_rss_mib']:7.1f} MiB  {result['seconds']:7.1f} s", flush=True)
    for row in rows:
        first = next(r for r in rows if r["kind"] == row["kind"] and r["path"] == row["path"])
        row["peak_vs_shortest"] = row["peak_rss_mib"] / first["peak_rss_mib"]
    print("\nkind        minutes  path       peak RSS MiB  x shortest")
    for row in rows:
        print(f"{row['kind']:10s}  {row['minutes']:7g}  {row['path']:9s}  {row['peak_rss_mib']:12.1f}  "
              f"{row['peak_vs_shortest']:10.2f}")
    report = dict(benchmark="long_file_memory", size=args.size, machine=platform.processor() or platform.machine(),
                  python=platform.python_version(), when=time.strftime("%Y-%m-%dT%H:%M:%S"), rows=rows)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
