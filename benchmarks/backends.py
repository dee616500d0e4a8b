"""`python -m benchmarks.backends`: the generator or conversion graph on every CPU backend, in one process, interleaved.

`--graph generator` (default) times the generator graph; `--graph converter` the conversion graph (role
`converter`, FCPE and the speech encoder inside; `converter_f0` with a host F0 for a bundle without a pitch
graph) on one window of a sung tone, as `svc_runtime.pipeline.window.run_windows` feeds it, and also
reports how far each backend's carried NSF phase (`phase_out`) is from ONNX Runtime's.

Backends (each through `Bundle.load(..., roles=(ROLE,))`, the same bundle files):
`ort-fp32` (ONNX Runtime, the runtime's default), `ov-fp32` (OpenVINO CPU plugin), `ov-bf16`
(OpenVINO with bf16 inference precision, on CPUs with AVX512-BF16 / AMX), `ort-int8` (the
bundle's int8 generator, when it has one), and with `--eager` `torch-eager`: the checkpoint in PyTorch
(`SynthesizerTrn.infer`, as so-vits-svc 4.1 runs it; generator only). Same feeds for all: random units, a sung F0 glide
with vibrato, seeded noise. Every repetition runs each backend once, in an order rotated
between repetitions; speed ratios vs `ort-fp32` (and eager) are taken inside a repetition, then the median.
SNR is each backend's audio vs `ort-fp32` on the same feeds; for the conversion graph also the largest F0
difference (its `f0` output, Hz). `ov-bf16` keeps the conversion graph's pitch network in f32
(`openvino_session.F32_ISLANDS`; the provider line says so).

The model: the random standard-size so-vits-svc 4.1 generator of `benchmarks.models`
(`svc-train init`), exported by `svc-export --int8` into a generator-only bundle next to it
(or the full benchmark bundle when it exists); for `--graph converter`, the full benchmark bundle
when it exists, else `svc-export --pitch fcpe` (no int8: its calibration takes long at this size)
into `converter_bundle` next to it. On a shared machine only the interleaved ratios
mean anything; the load average is printed with the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np

from benchmarks.models import SIZES, _cli, ensure_models
from svc_runtime.bundle.bundle import Bundle
from svc_runtime.bundle.sessions import ProviderConfig
from svc_runtime.signal.nsf_phase import frame_start_phases, limbs_to_cycles
from svc_runtime.signal.quality import snr_db

REFERENCE = "ort-fp32"
EAGER = "torch-eager"
GRAPHS = ("generator", "converter")


def generator_bundle(size: str, cache: Path | None = None) -> Path:
    """A bundle with the `size` benchmark generator (and its int8 copy): the full benchmark bundle when
    it is built, else a generator-only export (`svc-export --int8`, ~1 min for standard) cached beside it."""
    models = ensure_models(size, cache, bundle=False)
    if (models.bundle / "manifest.json").is_file():
        return models.bundle
    out = models.root / "generator_bundle"
    if not (out / "manifest.json").is_file():
        cmd = _cli("svc-export") + [str(models.checkpoint), "--config", str(models.config), "-o", str(out), "--int8"]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"svc-export failed (exit {result.returncode}):\n{result.stderr[-4000:]}")
    return out


def converter_bundle(size: str, cache: Path | None = None) -> Path:
    """A bundle with the `size` benchmark model's conversion graph: the full benchmark bundle when it is built,
    else `svc-export --pitch fcpe` with the benchmark encoder (no int8) cached beside it."""
    models = ensure_models(size, cache, bundle=False)
    if (models.bundle / "manifest.json").is_file():
        return models.bundle
    out = models.root / "converter_bundle"
    if not (out / "manifest.json").is_file():
        cmd = _cli("svc-export") + [str(models.checkpoint), "--config", str(models.config), "-o", str(out),
                                    "--encoder-checkpoint", str(models.encoder)]
        if models.pitch == "fcpe":
            cmd += ["--pitch", "fcpe"]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"svc-export failed (exit {result.returncode}):\n{result.stderr[-4000:]}")
    return out


def graph_role(bundle_dir: Path, graph: str) -> str:
    """The bundle role `--graph` times: `generator`, or `converter` (`converter_f0` without a pitch graph)."""
    from svc_runtime.bundle.manifest import Manifest

    if graph == "generator":
        return "generator"
    roles = {g.role for g in Manifest.read(bundle_dir).graphs.values()}
    for role in ("converter", "converter_f0"):
        if role in roles:
            return role
    raise ValueError(f"{bundle_dir} has no conversion graph (re-export it with svc-export and a speech encoder)")


def backends(bundle_dir: Path, threads: int, role: str = "generator") -> dict[str, tuple[ProviderConfig, str]]:
    """name -> (provider config, bundle precision) of every backend this machine and bundle can run."""
    from svc_runtime.bundle.manifest import Manifest
    from svc_runtime.bundle.openvino_session import cpu_has_bf16, openvino_available

    chosen = {REFERENCE: (ProviderConfig(intra_op_threads=threads), "fp32")}
    if openvino_available():
        chosen["ov-fp32"] = (ProviderConfig(provider="openvino", intra_op_threads=threads), "fp32")
        if cpu_has_bf16():
            chosen["ov-bf16"] = (
                ProviderConfig(provider="openvino", intra_op_threads=threads, inference_precision="bf16"), "fp32")
    if Manifest.read(bundle_dir).graph_for(role, "int8")[1].precision == "int8":
        chosen["ort-int8"] = (ProviderConfig(intra_op_threads=threads), "int8")
    return chosen


def generator_feeds(bundle: Bundle, seconds: float, seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs of the generator graph for `seconds` of audio: random units, a sung F0 glide (110-440 Hz,
    5.5 Hz vibrato, a short unvoiced gap every 2 s), seeded noise at so-vits-svc's scale 0.35."""
    model = bundle.manifest.model
    hop, sr = model.hop_length, model.sampling_rate
    frames = int(round(seconds * sr / hop))
    rng = np.random.default_rng(seed)
    t = np.arange(frames) * hop / sr
    f0 = 110.0 * 2.0 ** (2.0 * (t / max(seconds, 1e-9)) + 0.03 * np.sin(2 * np.pi * 5.5 * t))
    f0[(t % 2.0) > 1.8] = 0.0
    f0 = f0[None].astype(np.float32)
    phase, _ = frame_start_phases(f0, hop, source_sr=model.nsf_source_sampling_rate,
                                  rand_ini=rng.random((1, model.n_harmonics)))
    feeds = {
        "c": rng.standard_normal((1, model.ssl_dim, frames), dtype=np.float32),
        "f0": f0,
        "uv": (f0 > 0).astype(np.float32),
        "speaker": np.ones((1, frames, model.n_speakers), np.float32) / model.n_speakers,
        "noise_prior": rng.standard_normal((1, model.inter_channels, frames), dtype=np.float32),
        "noise_scale": np.array([0.35], np.float32),
        "phase": phase.astype(np.float32),
        "sine_noise": rng.standard_normal((1, frames * hop, model.n_harmonics), dtype=np.float32),
    }
    if model.vol_embedding:
        feeds["vol"] = np.full((1, frames), 0.3, np.float32)
    return feeds


def converter_feeds(bundle: Bundle, role: str, seconds: float, seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs of the conversion graph for one window of `seconds`: a sung tone (a 110-440 Hz glide with 5.5 Hz
    vibrato and three harmonics, a short pause every 2 s) and its F0 for `converter_f0`, the runtime's noise
    (seed 52468, stream 0) and initial phase, the first speaker, transpose 0, phase carried to the last frame."""
    from svc_runtime.audio.resample import resample
    from svc_runtime.pipeline.noise import NoiseStream
    from svc_runtime.pipeline.window import Controls, Window, window_feeds

    model = bundle.manifest.model
    hop, sr = model.hop_length, model.sampling_rate
    frames = int(round(seconds * sr / hop))
    t = np.arange(frames * hop) / sr
    f0 = 110.0 * 2.0 ** (2.0 * (t / max(seconds, 1e-9)) + 0.03 * np.sin(2 * np.pi * 5.5 * t))
    voiced = (t % 2.0) <= 1.8
    phase = 2 * np.pi * np.cumsum(f0) / sr
    audio = (0.2 * voiced * sum(np.sin(k * phase) / k for k in (1, 2, 3))).astype(np.float32)
    noise = NoiseStream(52468 + seed, 0, model.inter_channels, hop, model.n_harmonics)
    speaker = np.zeros((frames, model.n_speakers), np.float32)
    speaker[:, 0] = 1.0
    frame_f0 = np.where(voiced[::hop], f0[::hop], 0.0).astype(np.float32)
    window = Window(wav16k=resample(audio, sr, 16000), start=0, frames=frames, noise=noise,
                    phase_in=noise.initial_phase(), state_frame=frames, speaker=speaker, f0=frame_f0,
                    audio=audio if model.vol_embedding else None)
    controls = Controls.create(0.0, 0.4, model.ssl_dim)
    return window_feeds(role, [window], controls, bundle.graph_entry(role).input_names())


def machine() -> dict:
    """CPU model, its bf16/AMX flags, core count, load average, library versions."""
    info = {"platform": platform.platform(), "cores": os.cpu_count()}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in lscpu.splitlines():
            if line.startswith("Model name:"):
                info["cpu"] = line.split(":", 1)[1].strip()
            if line.startswith("Flags:"):
                info["bf16_flags"] = [f for f in line.split() if f in ("avx512_bf16", "amx_bf16", "avx512_vnni")]
    except OSError:
        pass
    import onnxruntime

    info["onnxruntime"] = onnxruntime.__version__
    try:
        import openvino

        info["openvino"] = openvino.__version__
    except ImportError:
        info["openvino"] = None
    return info


class EagerGenerator:
    """The baseline: the benchmark checkpoint as a PyTorch module, run the way so-vits-svc 4.1 runs it
    (`SynthesizerTrn.infer`, weight norm kept, float32, `threads` intra-op threads) on the generator graph's
    feeds (same units, F0, noise, phases), so its output is the graph's to float rounding."""

    def __init__(self, checkpoint: Path, config: Path, threads: int):
        import torch

        from svc_train.checkpoint import load_generator

        torch.set_num_threads(threads)
        self.torch = torch
        self.model = load_generator(checkpoint, config)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        t = {k: self.torch.from_numpy(v) for k, v in feeds.items()}
        speakers = t["speaker"].mean(dim=1)  # [B, S]: the benchmark feeds hold one mix for every frame
        g = self.torch.zeros(speakers.shape[0], dtype=self.torch.long) if speakers.shape[1] == 1 else speakers
        noise = {"prior": t["noise_prior"], "sine": t["sine_noise"],
                 "rand_ini": self.torch.zeros(t["phase"].shape[0], t["phase"].shape[2])}  # unused: phase given
        audio, _ = self.model.infer(t["c"], t["f0"], t["uv"], g, noise_scale=float(feeds["noise_scale"][0]),
                                    vol=t.get("vol"), noise=noise, phase=t["phase"])
        return {"audio": audio.numpy()}


def runners(bundle_dir: Path, role: str, threads: int, eager: EagerGenerator | None = None, log=print):
    """name -> (run(feeds) -> outputs, description) of every path; the reference (ONNX Runtime fp32) first."""
    chosen: dict[str, tuple] = {}
    for name, (config, precision) in backends(bundle_dir, threads, role).items():
        started = time.perf_counter()
        session = Bundle.load(bundle_dir, config, precision=precision, roles=(role,)).sessions[role]
        loaded_s = time.perf_counter() - started
        chosen[name] = (session.run, {"provider": session.provider, "graph": session.name, "load_s": round(loaded_s, 3)})
        log(f"{name:11s} {session.name} on {session.provider}, loaded in {loaded_s:.2f} s")
    if eager is not None:
        chosen[EAGER] = (eager.run, {"provider": f"torch {eager.torch.__version__}", "graph": "SynthesizerTrn.infer"})
        log(f"{EAGER:11s} SynthesizerTrn.infer on torch {eager.torch.__version__}")
    return chosen


def run(args: argparse.Namespace, log=print) -> dict:
    if args.bundle:
        bundle_dir = Path(args.bundle)
    else:
        bundle_dir = converter_bundle(args.size) if args.graph == "converter" else generator_bundle(args.size)
    role = graph_role(bundle_dir, args.graph)
    report = {"machine": machine(), "bundle": str(bundle_dir), "graph": role, "threads": args.threads,
              "reps": args.reps, "load_before": os.getloadavg(), "backends": {}, "lengths": []}
    eager = None
    if getattr(args, "eager", False):
        if role != "generator":
            raise ValueError("--eager times the generator only (the issue's baseline); drop it for --graph converter")
        models = ensure_models(args.size, getattr(args, "cache", None), bundle=False)
        eager = EagerGenerator(models.checkpoint, models.config, args.threads)
    paths = runners(bundle_dir, role, args.threads, eager, log)
    report["backends"] = {n: info for n, (_, info) in paths.items()}
    names = list(paths)
    described = Bundle.load(bundle_dir, roles=(), verify=False)  # the feeds' shapes; `runners` verified the files
    for seconds in args.seconds:
        if role == "generator":
            feeds = generator_feeds(described, seconds)
        else:
            feeds = converter_feeds(described, role, seconds)
        results = {n: paths[n][0](feeds) for n in names}  # warm-up at this shape
        snr = {n: snr_db(results[REFERENCE]["audio"], results[n]["audio"]) for n in names}
        f0_error = {}
        if "f0" in results[REFERENCE]:  # the graph's own F0 (its pitch network, filled) vs ONNX Runtime's, Hz
            f0_error = {n: float(np.abs(results[n]["f0"] - results[REFERENCE]["f0"]).max()) for n in names}
        drift = {}
        if "phase_out" in results[REFERENCE]:  # carried NSF phase vs ONNX Runtime's, in cycles on the circle
            for n in names:
                d = np.abs(limbs_to_cycles(results[n]["phase_out"]) - limbs_to_cycles(results[REFERENCE]["phase_out"]))
                drift[n] = float(np.minimum(d, 1 - d).max())
        del results
        walls: dict[str, list[float]] = {n: [] for n in names}
        cpus: dict[str, list[float]] = {n: [] for n in names}
        for rep in range(args.reps):
            order = names[rep % len(names):] + names[: rep % len(names)]
            for n in order:
                c0, t0 = time.process_time(), time.perf_counter()
                paths[n][0](feeds)
                walls[n].append(time.perf_counter() - t0)
                cpus[n].append(time.process_time() - c0)
        row = {"seconds": seconds, "load": os.getloadavg()[0], "backends": {}}
        for n in names:
            row["backends"][n] = {
                "rtf": statistics.median(walls[n]) / seconds,
                "rtf_min": min(walls[n]) / seconds, "rtf_max": max(walls[n]) / seconds,
                "speed_vs_ort_fp32": statistics.median(walls[REFERENCE][i] / walls[n][i] for i in range(args.reps)),
                "cores_used": statistics.median(c / w for c, w in zip(cpus[n], walls[n])),
                "snr_db_vs_ort_fp32": snr[n],
            }
            if eager is not None:  # speed-up over eager, per repetition (the two ran minutes apart at most)
                row["backends"][n]["speed_vs_eager"] = statistics.median(
                    walls[EAGER][i] / walls[n][i] for i in range(args.reps))
            if drift:
                row["backends"][n]["phase_out_cycles_vs_ort_fp32"] = drift[n]
            if f0_error:
                row["backends"][n]["f0_max_abs_hz_vs_ort_fp32"] = f0_error[n]
        report["lengths"].append(row)
        log(format_row(row, args.reps, eager is not None))
    report["load_after"] = os.getloadavg()
    return report


def format_row(row: dict, reps: int, with_eager: bool) -> str:
    """One length's table: RTF (median, min-max), speed against ONNX Runtime fp32 (and eager), cores, SNR."""
    backends_ = row["backends"]
    drift = any("phase_out_cycles_vs_ort_fp32" in r for r in backends_.values())
    f0 = any("f0_max_abs_hz_vs_ort_fp32" in r for r in backends_.values())
    lines = [f"\n{row['seconds']:g} s of audio ({reps} reps, load {row['load']:.1f}):",
             f"  {'path':11s} {'RTF':>6s} {'(min-max)':>13s} {'x ort-fp32':>10s}" + (f" {'x eager':>7s}" if with_eager else "")
             + f" {'cores':>6s} {'SNR dB':>7s}" + (f" {'phase_out':>9s}" if drift else "") + (f" {'F0 Hz':>7s}" if f0 else "")]
    for n, r in backends_.items():
        lines.append(
            f"  {n:11s} {r['rtf']:6.3f} {r['rtf_min']:6.3f}-{r['rtf_max']:6.3f} {r['speed_vs_ort_fp32']:10.2f}"
            + (f" {r['speed_vs_eager']:7.2f}" if with_eager else "")
            + f" {r['cores_used']:6.2f} {r['snr_db_vs_ort_fp32']:7.1f}"
            + (f" {r['phase_out_cycles_vs_ort_fp32']:9.1e}" if drift else "")
            + (f" {r['f0_max_abs_hz_vs_ort_fp32']:7.4f}" if f0 else ""))
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="standard", choices=SIZES)
    parser.add_argument("--graph", default="generator", choices=GRAPHS,
                        help="generator, or converter: the conversion graph (pitch network and encoder inside)")
    parser.add_argument("--bundle", default=None, help="a bundle folder to use instead of the benchmark model's")
    parser.add_argument("--seconds", type=float, nargs="+", default=[5.0, 10.0, 30.0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--eager", action="store_true",
                        help="also time the checkpoint in PyTorch eager (generator only; needs torch)")
    parser.add_argument("--json", type=Path, default=None, help="write the report here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    report = run(args)
    m = report["machine"]
    print(f"\n{m.get('cpu')} ({m['cores']} cores, {', '.join(m.get('bf16_flags', []))}), onnxruntime "
          f"{m['onnxruntime']}, openvino {m['openvino']}, {report['graph']} graph, {args.threads} threads; load average "
          f"{report['load_before'][0]:.1f} before, {report['load_after'][0]:.1f} after")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
