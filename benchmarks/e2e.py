"""End-to-end benchmark: our runtime (bundle on ONNX Runtime) against PyTorch eager, side by side.

    python -m benchmarks.e2e                       # the full table (minutes on 2 cores)
    python -m benchmarks.e2e --sections throughput --sizes tiny --lengths 10 --reps 3
    python -m benchmarks.e2e --quick               # micro models, seconds (the smoke test)

Sections (each optional): throughput (RTF per size and input length, stages, ratio
torch/ours from interleaved repetitions), batch (1/4/16 files at once), streaming
(block sizes 32-500 ms), memory (peak RSS per input length, one subprocess each),
coldstart (process start to the first converted second, one subprocess each), tuning
(ONNX Runtime session settings for our runtime). Writes results.json, results.md and
rtf.png into --out (default benchmarks/results/). The CPU may be shared: every row
carries the load average at the time it ran; compare ratios, not absolute times.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np

from benchmarks.inputs import SAMPLE_RATE, BenchInput, concatenated, file_set, write_input
from benchmarks.models import ModelSet, ensure_models
from benchmarks.ours import OursConverter, SessionTuning
from benchmarks.timing import StageTimer, Summary, load_average

SECTIONS = ("throughput", "batch", "streaming", "memory", "coldstart", "tuning", "graphs")
STAGE_ORDER = ("decode", "resample", "slice", "prepare", "pitch", "content", "generator", "graph", "stitch", "write")
DEFAULT_OUT = Path(__file__).resolve().parent / "results"


# ------------------------------------------------------------------ machine


def machine_info() -> dict:
    """CPU model, cores, memory and library versions of this run."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for package in ("onnxruntime", "torch", "numpy", "soxr", "soundfile", "onnx"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).resolve().parent, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {
        "git_commit": commit,
        "cpu": cpu, "logical_cores": os.cpu_count(), "memory_gib": round(mem_gib, 1),
        "python": platform.python_version(), "platform": platform.platform(), "versions": versions,
    }


def _load_row() -> list[float]:
    return [round(v, 2) for v in load_average()]


# ------------------------------------------------------------------ throughput


def _convert_timed(converter, item: BenchInput, out_dir: Path, tag: str) -> dict:
    timer = StageTimer()
    load = _load_row()
    cpu0 = _cpu_seconds()
    t0 = time.perf_counter()
    seconds = converter.convert_file(item.path, out_dir / f"{tag}_{item.path.name}", timer)
    wall = time.perf_counter() - t0
    cpu = _cpu_seconds() - cpu0
    return {"wall": wall, "rtf": wall / seconds, "cpu_seconds": cpu, "cpu_per_audio_second": cpu / seconds,
            "audio_seconds": seconds, "stages": timer.as_dict(), "load": load}


def _cpu_seconds() -> float:
    """User + system CPU time of this process, all threads (spin-waiting threads count too)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _stage_medians(reps: list[dict]) -> dict[str, float]:
    names = {k for r in reps for k in r["stages"]}
    return {k: float(np.median([r["stages"].get(k, 0.0) for r in reps])) for k in sorted(names, key=_stage_key)}


def _stage_key(name: str) -> int:
    return STAGE_ORDER.index(name) if name in STAGE_ORDER else len(STAGE_ORDER)


def throughput(models: ModelSet, lengths: list[float], reps: int, threads: int, work: Path,
               with_torch: bool, log, variants: tuple[str, ...] = (), precisions: tuple[str, ...] = ()) -> list[dict]:
    """RTF of ours (plus tuned variants of ours, and ours on the bundle's graphs of other `precisions`,
    e.g. int8, as `ours-int8`) and torch eager on the same input, the order rotated every repetition;
    the ratio torch/ours is taken within each repetition."""
    from benchmarks.tuning import apply_variant

    converters: dict[str, object] = {
        "ours": OursConverter(models.bundle, pitch=models.pitch, tuning=SessionTuning(intra_op_threads=threads))}
    for variant in variants:
        conv = OursConverter(models.bundle, pitch=models.pitch, tuning=SessionTuning(intra_op_threads=threads))
        apply_variant(conv, variant, threads)
        converters[f"ours+{variant}"] = conv
    for precision in precisions:
        converters[f"ours-{precision}"] = OursConverter(
            models.bundle, pitch=models.pitch, tuning=SessionTuning(intra_op_threads=threads), precision=precision)
    if with_torch:
        converters["torch"] = _eager(models, threads)
    names = list(converters)
    rows = []
    for seconds in lengths:
        item = write_input(work / "inputs", seconds)
        # one warm-up each (first-run allocations and kernel selection are not throughput)
        warm = write_input(work / "inputs", min(seconds, 3.0), offset=7)
        for name, conv in converters.items():
            conv.convert_file(warm.path, work / f"warm_{name}.wav", StageTimer())
        runs: dict[str, list[dict]] = {name: [] for name in names}
        ratios: dict[str, list[float]] = {name: [] for name in names}
        for rep in range(reps):
            order = names[rep % len(names):] + names[:rep % len(names)]
            if rep % 2:
                order.reverse()
            for name in order:
                runs[name].append(_convert_timed(converters[name], item, work, name))
                log(f"  {models.size} {seconds:g}s {name} rep {rep}: RTF {runs[name][-1]['rtf']:.3f} "
                    f"load {runs[name][-1]['load'][0]}")
            if with_torch:
                for name in names[:-1]:
                    ratios[name].append(runs["torch"][-1]["wall"] / runs[name][-1]["wall"])
        for name, reps_ in runs.items():
            rows.append({
                "size": models.size, "input_seconds": item.seconds, "input": item.source, "impl": name,
                "threads": threads, "rtf": Summary.of([r["rtf"] for r in reps_]).as_dict(),
                "cpu_per_audio_second": Summary.of([r["cpu_per_audio_second"] for r in reps_]).as_dict(),
                "stages_median_s": _stage_medians(reps_), "reps": reps_,
                "ratio_torch_over_ours": Summary.of(ratios[name]).as_dict() if ratios[name] else None,
            })
    return rows


def _eager(models: ModelSet, threads: int):
    from benchmarks.torch_eager import TorchEagerConverter

    return TorchEagerConverter(models, threads=threads or None)


# ------------------------------------------------------------------ batch


def batch_scaling(models: ModelSet, counts: list[int], file_seconds: float, threads: int, work: Path,
                  with_torch: bool, log, torch_max: int = 0) -> list[dict]:
    """Throughput (audio s per wall s) converting N files at once: ours batches generator chunks
    across files; torch eager converts them one after another, as so-vits-svc does."""
    ours = OursConverter(models.bundle, pitch=models.pitch, tuning=SessionTuning(intra_op_threads=threads))
    eager = _eager(models, threads) if with_torch else None
    out_dir = work / "batch_out"
    out_dir.mkdir(parents=True, exist_ok=True)
    files = file_set(work / "batch_in", max(counts), file_seconds)
    rows = []
    for count in counts:
        chosen = files[:count]
        for name in ("ours", "torch"):
            if name == "torch" and (eager is None or (torch_max and count > torch_max)):
                continue
            timer = StageTimer()
            load = _load_row()
            t0 = time.perf_counter()
            if name == "ours":
                audio = ours.convert_files([f.path for f in chosen], [out_dir / f"o_{f.path.name}" for f in chosen], timer)
            else:
                audio = sum(eager.convert_file(f.path, out_dir / f"t_{f.path.name}", timer) for f in chosen)
            wall = time.perf_counter() - t0
            rows.append({"size": models.size, "files": count, "impl": name, "audio_seconds": audio, "wall": wall,
                         "throughput_x_realtime": audio / wall, "stages": timer.as_dict(), "load": load})
            log(f"  batch {count} {name}: {audio / wall:.2f}x real time, load {load[0]}")
    return rows


# ------------------------------------------------------------------ streaming


def streaming(models: ModelSet, blocks_ms: list[float], stream_seconds: float, max_blocks: int, threads: int,
              work: Path, log, context_seconds: float | None = None,
              generator_context_seconds: float | None = None) -> list[dict]:
    """Per-block compute time, algorithmic latency and whether each block size keeps up."""
    from svc_runtime.streaming import StreamingConverter, StreamingOptions

    ours = OursConverter(models.bundle, pitch=models.pitch, tuning=SessionTuning(intra_op_threads=threads))
    item = write_input(work / "inputs", stream_seconds, offset=11)
    from svc_runtime.audio.decode import decode_audio

    samples = decode_audio(item.path).samples
    rows = []
    for ms in blocks_ms:
        block = int(round(ms / 1000 * ours.sr))
        settings = {"f0_method": ours.options.f0_method}
        if context_seconds is not None:
            settings["context_seconds"] = context_seconds
        if generator_context_seconds is not None:
            settings["generator_context_seconds"] = generator_context_seconds
        stream = StreamingConverter(ours.bundle, block, StreamingOptions(**settings))
        n_blocks = min(max_blocks, max(6, samples.size // block))
        x = np.resize(samples, n_blocks * block).astype(np.float32)
        times = []
        load = _load_row()
        timer = StageTimer()
        ours._timer = timer  # book graph time per stage (pitch, content, generator)
        try:
            for i in range(n_blocks):
                t0 = time.perf_counter()
                stream.process(x[i * block:(i + 1) * block])
                times.append(time.perf_counter() - t0)
        finally:
            ours._timer = None
        graph_ms = {k: 1000 * v / n_blocks for k, v in timer.as_dict().items()}
        steady = np.array(times[2:] if len(times) > 4 else times)
        block_s = block / ours.sr
        rows.append({
            "size": models.size, "block_ms": 1000 * block_s, "block_samples": block, "blocks": n_blocks,
            "context_s": stream.options.context_seconds,
            "generator_context_s": getattr(stream.options, "generator_context", stream.options.context_seconds),
            "latency_ms": 1000 * stream.latency_seconds,
            "compute_ms": {"median": 1000 * float(np.median(steady)), "p95": 1000 * float(np.percentile(steady, 95)),
                           "max": 1000 * float(steady.max())},
            "rtf_median": float(np.median(steady)) / block_s,
            "graph_ms_per_block_mean": graph_ms,
            "keeps_up": bool(np.percentile(steady, 95) < block_s), "load": load,
        })
        log(f"  stream {ms:g} ms: median {1000 * np.median(steady):.1f} ms/block, "
            f"latency {1000 * stream.latency_seconds:.0f} ms, keeps up {rows[-1]['keeps_up']}, graphs "
            + ", ".join(f"{k} {v:.0f} ms" for k, v in graph_ms.items()))
    return rows


# ------------------------------------------------------------------ subprocess probes


def _probe(args: list[str]) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent) + os.pathsep + env.get("PYTHONPATH", "")
    started = time.time()
    result = subprocess.run([sys.executable, "-m", "benchmarks.probe", *args], capture_output=True, text=True,
                            env=env)
    if result.returncode != 0:
        raise RuntimeError(f"probe {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    data = json.loads(result.stdout.strip().splitlines()[-1])
    data["process_started"] = started
    return data


def memory(models: ModelSet, lengths: list[float], impls: list[str], threads: int, work: Path, log) -> list[dict]:
    rows = []
    for seconds in lengths:
        item = write_input(work / "inputs", seconds)
        for impl in impls:
            load = _load_row()
            data = _probe(["memory", "--impl", impl, "--size", models.size, "--input", str(item.path),
                           "--output", str(work / f"mem_{impl}.wav"), "--threads", str(threads)])
            data.update(input_seconds=item.seconds, load=load)
            rows.append(data)
            log(f"  memory {impl} {seconds:g}s: peak RSS {data['peak_rss_mib']:.0f} MiB "
                f"(after load {data['rss_after_load_mib']:.0f}), tracemalloc peak {data['tracemalloc_peak_mib']:.1f} MiB")
    return rows


def coldstart(models: ModelSet, impls: list[str], reps: int, threads: int, work: Path, log) -> list[dict]:
    item = write_input(work / "inputs", 2.0)
    rows = []
    for impl in impls:
        samples = []
        for _ in range(reps):
            load = _load_row()
            data = _probe(["coldstart", "--impl", impl, "--size", models.size, "--input", str(item.path),
                           "--threads", str(threads)])
            samples.append({"to_first_second": data["t_first_second"] - data["process_started"],
                            "to_models_loaded": data["t_loaded"] - data["process_started"],
                            "to_imported": data["t_imported"] - data["process_started"], "load": load})
        rows.append({"size": models.size, "impl": impl, "reps": samples,
                     "to_first_second": Summary.of([s["to_first_second"] for s in samples]).as_dict(),
                     "to_models_loaded": Summary.of([s["to_models_loaded"] for s in samples]).as_dict()})
        log(f"  cold start {impl}: {rows[-1]['to_first_second']['median']:.2f} s to the first converted second")
    return rows


# ------------------------------------------------------------------ tuning


def tuning(models: ModelSet, seconds: float, reps: int, threads: int, work: Path, log) -> list[dict]:
    from benchmarks.tuning import VARIANTS, apply_variant

    item = write_input(work / "inputs", seconds)
    probe, _ = concatenated(2.0, offset=5)
    converters, outputs = {}, {}
    for name in VARIANTS:
        conv = OursConverter(models.bundle, pitch=models.pitch, tuning=SessionTuning(intra_op_threads=threads))
        apply_variant(conv, name, threads)
        conv.convert_file(item.path, work / f"warm_{name}.wav", StageTimer())
        outputs[name] = conv.convert_array(probe, SAMPLE_RATE)
        converters[name] = conv
    runs: dict[str, list[dict]] = {name: [] for name in VARIANTS}
    for rep in range(reps):
        names = list(VARIANTS) if rep % 2 == 0 else list(reversed(VARIANTS))
        for name in names:
            runs[name].append(_convert_timed(converters[name], item, work, f"tune_{name}"))
    baseline = runs[next(iter(VARIANTS))]
    rows = []
    for name, reps_ in runs.items():
        ratios = [b["wall"] / r["wall"] for b, r in zip(baseline, reps_)]
        first = outputs[next(iter(VARIANTS))]
        rows.append({"size": models.size, "variant": name, "description": VARIANTS[name],
                     "max_abs_diff_vs_default": float(np.max(np.abs(outputs[name] - first))),
                     "input_seconds": item.seconds, "rtf": Summary.of([r["rtf"] for r in reps_]).as_dict(),
                     "stages_median_s": _stage_medians(reps_),
                     "speedup_vs_default": Summary.of(ratios).as_dict(), "reps": reps_})
        log(f"  tuning {name}: RTF {rows[-1]['rtf']['median']:.3f}, x{rows[-1]['speedup_vs_default']['median']:.2f}")
    return rows


def graph_ab(models: ModelSet, reps: int, threads_list: list[int], log) -> list[dict]:
    """Each bundle graph alone, as exported against its 2-D-convolution rewrite, interleaved.

    Inputs: one second of frames for the generator, three seconds of 16 kHz audio for the
    waveform graphs. Returns the per-repetition speed-up (default time / rewritten time).
    """
    import onnxruntime as ort

    from benchmarks.tuning import conv2d_copy

    bundle_dir = models.bundle
    manifest = json.loads((bundle_dir / "manifest.json").read_text(encoding="utf-8"))
    model = manifest["model"]
    rng = np.random.default_rng(0)
    frames, hop = int(round(SAMPLE_RATE / model["hop_length"])), model["hop_length"]
    f0 = np.full((1, frames), 220.0, np.float32)
    generator_feeds = {
        "c": rng.standard_normal((1, model["ssl_dim"], frames), dtype=np.float32), "f0": f0,
        "uv": np.ones((1, frames), np.float32), "speaker": np.ones((1, frames, model["n_speakers"]), np.float32),
        "noise_prior": rng.standard_normal((1, model["inter_channels"], frames), dtype=np.float32),
        "noise_scale": np.array([0.4], np.float32), "phase": rng.random((1, frames, 9), dtype=np.float32),
        "sine_noise": rng.standard_normal((1, frames * hop, 9), dtype=np.float32),
    }
    wave_feeds = {"wav": (0.1 * rng.standard_normal((1, 48000))).astype(np.float32)}
    rows = []
    for name, entry in manifest["graphs"].items():
        feeds = generator_feeds if entry["role"] == "generator" else wave_feeds
        if entry["role"] not in ("generator", "speech_encoder", "pitch") or entry.get("precision", "fp32") != "fp32":
            continue
        path = bundle_dir / entry["file"]
        for threads in threads_list:
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.log_severity_level = 3
            base = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            rewritten = ort.InferenceSession(str(conv2d_copy(path)), options, providers=["CPUExecutionProvider"])
            want, got = base.run(None, feeds)[0], rewritten.run(None, feeds)[0]
            speedups, load = [], _load_row()
            for rep in range(reps):
                pair = (base, rewritten) if rep % 2 == 0 else (rewritten, base)
                seconds = {}
                for session in pair:
                    t0 = time.perf_counter()
                    session.run(None, feeds)
                    seconds[id(session)] = time.perf_counter() - t0
                speedups.append(seconds[id(base)] / seconds[id(rewritten)])
            rows.append({"size": models.size, "graph": name, "threads": threads, "reps": reps, "load": load,
                         "speedup": Summary.of(speedups).as_dict(),
                         "max_abs_diff": float(np.max(np.abs(want - got))), "output_peak": float(np.max(np.abs(want)))})
            log(f"  graph {name} threads {threads}: conv2d x{rows[-1]['speedup']['median']:.2f}")
    return rows


# ------------------------------------------------------------------ main


def run(args: argparse.Namespace, log) -> dict:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {"machine": machine_info(), "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                     "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                     "load_at_start": _load_row()}
    with tempfile.TemporaryDirectory(prefix="svc-bench-") as tmp:
        work = Path(tmp)
        for size in args.sizes:
            models = ensure_models(size, args.cache)
            log(f"{size}: models in {models.root}")
            manifest = json.loads((models.bundle / "manifest.json").read_text(encoding="utf-8"))
            results.setdefault("bundles", {})[size] = manifest.get("exporter", {})
            if "throughput" in args.sections:
                results.setdefault("throughput", []).extend(
                    throughput(models, args.lengths, args.reps, args.threads, work, not args.no_torch, log,
                               tuple(args.variants), tuple(args.precisions)))
            if "batch" in args.sections and size == args.sizes[0]:
                results["batch"] = batch_scaling(models, args.batch, args.batch_file_seconds, args.threads, work,
                                                 not args.no_torch, log, args.batch_torch_max)
            if "streaming" in args.sections:
                results.setdefault("streaming", []).extend(
                    streaming(models, args.blocks, args.stream_seconds, args.stream_max_blocks, args.threads, work, log,
                              args.stream_context, args.stream_generator_context))
            if "memory" in args.sections:
                impls = ["ours"] + ([] if args.no_torch else ["torch"])
                results.setdefault("memory", []).extend(
                    memory(models, args.memory_lengths, impls, args.threads, work, log))
                if args.memory_long and size == args.sizes[0]:
                    results["memory"].extend(memory(models, [args.memory_long], ["ours"], args.threads, work, log))
            if "coldstart" in args.sections:
                impls = ["ours"] + ([] if args.no_torch else ["torch"])
                results.setdefault("coldstart", []).extend(coldstart(models, impls, args.coldstart_reps,
                                                                     args.threads, work, log))
            if "graphs" in args.sections:
                results.setdefault("graphs", []).extend(graph_ab(models, max(args.reps, 2), [1, 2], log))
            if "tuning" in args.sections and size == args.sizes[0]:
                results["tuning"] = tuning(models, args.tuning_seconds, args.reps, args.threads, work, log)
    results["finished_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    results["load_at_end"] = _load_row()
    from benchmarks.report import write_reports

    write_reports(results, out, plot=not args.no_plot)
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.e2e", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["standard", "tiny"], choices=("standard", "tiny", "micro"))
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    parser.add_argument("--lengths", nargs="+", type=float, default=[5.0, 10.0, 30.0], help="input seconds")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch threads = ONNX Runtime intra-op threads")
    parser.add_argument("--batch", nargs="+", type=int, default=[1, 4, 16])
    parser.add_argument("--batch-file-seconds", type=float, default=3.0)
    parser.add_argument("--batch-torch-max", type=int, default=4,
                        help="largest file count also run in torch eager (it converts files one by one, so its "
                             "throughput does not depend on the count; 0: all)")
    parser.add_argument("--blocks", nargs="+", type=float, default=[32, 64, 128, 256, 500], help="block sizes, ms")
    parser.add_argument("--stream-seconds", type=float, default=4.0, help="input streamed (looped when short)")
    parser.add_argument("--stream-max-blocks", type=int, default=24, help="blocks timed per block size at most")
    parser.add_argument("--stream-context", type=float, default=None,
                        help="StreamingOptions.context_seconds (default: the runtime's default)")
    parser.add_argument("--stream-generator-context", type=float, default=None,
                        help="StreamingOptions.generator_context_seconds (default: the runtime's default, "
                             "the same as the context)")
    parser.add_argument("--memory-lengths", nargs="+", type=float, default=[10.0])
    parser.add_argument("--memory-long", type=float, default=300.0, help="long input for ours (0: skip)")
    parser.add_argument("--coldstart-reps", type=int, default=2)
    parser.add_argument("--tuning-seconds", type=float, default=10.0)
    parser.add_argument("--no-torch", action="store_true", help="only our runtime")
    parser.add_argument("--variants", nargs="*", default=[],
                        help="tuned variants of ours (benchmarks/tuning.py) to interleave in the throughput runs")
    parser.add_argument("--precisions", nargs="*", default=[],
                        help="also run ours on the bundle's graphs of these precisions (e.g. int8: svc-export --int8) "
                             "in the throughput runs, as ours-<precision>")
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("--cache", type=Path, default=None, help="model cache (default ~/.cache/svc-bench)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: micro models, a 2 s input, one repetition, two block sizes")
    args = parser.parse_args(argv)
    if args.quick:  # smaller defaults; options given explicitly are kept
        quick = {"sizes": ["micro"], "lengths": [2.0], "reps": 1, "batch": [1, 2], "batch_file_seconds": 1.5,
                 "blocks": [100.0, 500.0], "stream_seconds": 1.0, "memory_lengths": [2.0], "memory_long": 0.0,
                 "coldstart_reps": 1, "tuning_seconds": 2.0}
        for name, value in quick.items():
            if getattr(args, name) == parser.get_default(name):
                setattr(args, name, value)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)

    def log(message: str) -> None:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()

    run(args, log)
    log(f"wrote {Path(args.out) / 'results.json'}, results.md, rtf.png")


if __name__ == "__main__":
    main()
