"""Whole-file conversion speed of this tree against another git revision, interleaved in one run.

`python -m benchmarks.ab_revision --rev 01518e6 [--size tiny|standard|micro] [--seconds 10] [--reps 3]`

Both trees export the same benchmark checkpoint (`benchmarks.models`) with their own `svc-export`, then
each repetition converts the same input once with each tree (order alternating), in a fresh process per
run with `PYTHONPATH` pointing at that tree, so two versions of `svc_runtime` never share a process. Reported:
median wall time of `Converter.convert` (sessions loaded and warmed up before timing), the ratio, and the
largest difference between the two outputs (the noise generators differ between revisions that changed
them, so audio equality is not expected there).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.models import ensure_models

RUN = r"""
import json, sys, time, numpy as np
from svc_runtime.bundle.bundle import Bundle
from svc_runtime.bundle.sessions import ProviderConfig
from svc_runtime.pipeline.convert import Converter
from svc_runtime.pipeline.options import ConvertOptions
bundle_dir, audio_path, out_path, threads, f0 = sys.argv[1:6]
bundle = Bundle.load(bundle_dir, ProviderConfig(provider="cpu", intra_op_threads=int(threads)))
conv = Converter(bundle, ConvertOptions(speaker=next(iter(bundle.speakers)), f0_method=None if f0 == "-" else f0))
x = np.load(audio_path)
conv.convert(x[: len(x) // 4], 44100)  # warm-up: sessions, arenas
t0 = time.perf_counter(); y = conv.convert(x, 44100); wall = time.perf_counter() - t0
np.save(out_path, y)
print(json.dumps({"wall": wall}))
"""


def _tone(seconds: float, sr: int = 44100) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    f0 = 220.0 * 2.0 ** (0.3 * np.sin(2 * np.pi * 0.5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    return (0.2 * sum(np.sin(k * phase) / k for k in (1, 2, 3))).astype(np.float32)


def _python(tree: Path, code: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    result = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, cwd=tree)
    if result.returncode != 0:
        raise RuntimeError(f"{tree}: {result.stderr[-3000:]}")
    return result.stdout


def _export(tree: Path, models, out: Path) -> None:
    code = "from svc_export.cli import main; main()"
    args = [str(models.checkpoint), "--config", str(models.config), "-o", str(out),
            "--encoder-checkpoint", str(models.encoder)]
    if models.pitch == "fcpe":
        args += ["--pitch", "fcpe"]
    _python(tree, code, *args)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", required=True, help="the git revision to compare against")
    parser.add_argument("--size", default="tiny", choices=("standard", "tiny", "micro"))
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    here = Path(__file__).resolve().parents[1]
    models = ensure_models(args.size, bundle=False)
    work = Path(tempfile.mkdtemp(prefix="svc-ab-"))
    other = work / "tree"
    subprocess.run(["git", "-C", str(here), "worktree", "add", "--detach", str(other), args.rev], check=True,
                   capture_output=True)
    try:
        trees = {"this": here, args.rev: other}
        for name, tree in trees.items():
            _export(tree, models, work / f"bundle-{name}")
        audio = work / "input.npy"
        np.save(audio, _tone(args.seconds))
        f0 = "-" if models.pitch == "fcpe" else models.pitch
        walls: dict[str, list[float]] = {name: [] for name in trees}
        for rep in range(args.reps):
            order = list(trees) if rep % 2 == 0 else list(trees)[::-1]
            for name in order:
                line = _python(trees[name], RUN, str(work / f"bundle-{name}"), str(audio), str(work / f"{name}.npy"),
                               str(args.threads), f0).strip().splitlines()[-1]
                walls[name].append(json.loads(line)["wall"])
        medians = {name: float(np.median(w)) for name, w in walls.items()}
        diff = float(np.abs(np.load(work / "this.npy") - np.load(work / f"{args.rev}.npy")).max())
        report = {"size": args.size, "seconds": args.seconds, "threads": args.threads, "walls": walls,
                  "median": medians, "rtf": {k: v / args.seconds for k, v in medians.items()},
                  "speedup_this_over_rev": medians[args.rev] / medians["this"], "max_abs_difference": diff,
                  "load": os.getloadavg()[0]}
        print(json.dumps(report, indent=2))
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(report, indent=2) + "\n")
    finally:
        subprocess.run(["git", "-C", str(here), "worktree", "remove", "--force", str(other)], capture_output=True)


if __name__ == "__main__":
    main()
