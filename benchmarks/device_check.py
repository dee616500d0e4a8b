"""The device check: one script that proves (or measures) the conversion graph on a provider, in one run.

    python -m benchmarks.device_check --provider cuda --out results/device   # on a GPU machine (docs/gpu.md)
    python -m benchmarks.device_check --provider cpu --out /tmp/dc --size micro --seconds 2 --blocks 50

Builds a random-weight model (`--size`: `micro` for tests, `standard` = so-vits-svc 4.1's template for
timings) with the contentvec_small encoder fixture and the FCPE pitch network, exports its bundle with
fp16 graphs, then writes `device_check.json` with:

- parity: the provider's fp32 conversion graph (through `ConversionBinding`: device-resident I/O, phase
  carried on the device) against CPU fp32 (`run_windows`) over consecutive windows of one stream
  (max |error|, target <= 1e-3), and the fp16 graph's SNR against CPU fp32;
- rtf: per length, compute seconds per audio second of the generator graph (ONNX Runtime), the
  conversion graph through the binding (fp32, fp16 on a GPU) and PyTorch eager on the same checkpoint
  (generator alone; pitch network + speech encoder + generator), on the provider's device (cpu: torch CPU);
- streaming: per block size, `StreamingConverter.process` per-block wall time (median, p95, max,
  as a fraction of the block) through the binding, and with CUDA-graph replay on CUDA;
- transfers: host <-> device copies per steady streaming chunk from the binding's counter;
- versions: python, onnxruntime (+ providers), torch, the card or the CPU model, the machine's load.

A section that fails records its error (type and message) and the others still run, so one device run
always yields a report. Timings on a shared CPU are only indicative: the load is recorded with them.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import statistics
import time
import traceback
from pathlib import Path

import numpy as np

from svc_runtime.signal.quality import snr_db

ROOT = Path(__file__).resolve().parents[1]
ENCODER_FIXTURE = ROOT / "tests" / "fixtures" / "contentvec_small" / "fairseq_checkpoint.pt"
ENCODER_DIM = 64
"""Unit size of the contentvec_small fixture."""
ROLE = "converter"
PARITY_TOLERANCE = 1e-3
REPORT = "device_check.json"


# --------------------------------------------------------------------------- model


def make_model(work: Path, size: str = "micro", seed: int = 1234, auto_f0: bool = False) -> tuple[Path, Path, Path]:
    """Random generator of `size` + its bundle (fp16 graphs, FCPE pitch inside) under `work`, built once
    (an existing bundle there is reused as it is). Returns (config, checkpoint, bundle folder).

    auto_f0: keep the template's F0 predictor (`use_automatic_f0_prediction`). Off by default: the
    exporter puts the predictor in an ONNX `If` on `auto_f0`, and CUDA-graph capture takes no control
    flow, so with it the CUDA-graph rows can only report that error; without it the graph does the
    same work (the `If` skips the predictor unless asked).
    """
    import torch

    from benchmarks.models import config_dict
    from svc_export.exporter import ExportRequest, export_bundle
    from svc_train.checkpoint import build_generator, save_checkpoint

    work.mkdir(parents=True, exist_ok=True)
    config, checkpoint, bundle = work / "config.json", work / "G_0.pth", work / "bundle"
    if (bundle / "manifest.json").is_file():
        return config, checkpoint, bundle
    values = config_dict(size, ssl_dim=ENCODER_DIM)
    values["model"]["use_automatic_f0_prediction"] = auto_f0
    config.write_text(json.dumps(values, indent=2))
    torch.manual_seed(seed)
    save_checkpoint(checkpoint, build_generator(config), 0, 1e-4)
    export_bundle(ExportRequest(checkpoint=checkpoint, config=config, output=bundle, encoder_checkpoint=ENCODER_FIXTURE,
                                pitch="fcpe", fp16=True, simplify=False))
    return config, checkpoint, bundle


def tone(seconds: float, sr: int) -> np.ndarray:
    """A gliding harmonic tone with vibrato: [seconds * sr] float32."""
    t = np.arange(int(sr * seconds)) / sr
    phase = 2 * np.pi * np.cumsum(220.0 * 2.0 ** (0.3 * np.sin(2 * np.pi * 0.5 * t))) / sr
    return (0.2 * sum(np.sin(k * phase) / k for k in (1, 2, 3))).astype(np.float32)


def stream_windows(bundle, audio: np.ndarray, frames: int, count: int, seed: int = 52468) -> list:
    """`count` consecutive windows of `frames` frames of one stream (each starts where the previous
    ended: state_frame = frames); phase_in of the first only (the rest carry it)."""
    from svc_runtime.audio.resample import resample
    from svc_runtime.pipeline.noise import NoiseStream
    from svc_runtime.pipeline.window import Window
    from svc_runtime.vocabulary import ENCODER_SAMPLE_RATE

    m, hop = bundle.manifest.model, bundle.hop_length
    noise = NoiseStream(seed, 0, m.inter_channels, hop, m.n_harmonics)
    speaker = np.zeros((frames, m.n_speakers), np.float32)
    speaker[:, 0] = 1.0
    windows = []
    for k in range(count):
        piece = audio[k * frames * hop : (k + 1) * frames * hop]
        windows.append(Window(wav16k=resample(piece, m.sampling_rate, ENCODER_SAMPLE_RATE), start=k * frames,
                              frames=frames, noise=noise, phase_in=noise.initial_phase(), state_frame=frames,
                              speaker=speaker))
    return windows


def reference_runs(bundle, windows, controls) -> list:
    """`run_windows` window by window, carrying the phase on the host."""
    from dataclasses import replace

    from svc_runtime.pipeline.window import run_windows

    results, phase = [], windows[0].phase_in
    for w in windows:
        result = run_windows(bundle, ROLE, [replace(w, phase_in=phase)], controls)[0]
        results.append(result)
        phase = result.phase_out
    return results


def bound_runs(binding, windows, controls, fetch=("audio", "f0", "uv", "phase_out")) -> list:
    """The same windows through a `ConversionBinding`, the phase carried on the device."""
    return [binding.run([w], controls, carry_phase=k > 0, fetch=fetch) for k, w in enumerate(windows)]


# --------------------------------------------------------------------------- sections


def _section(report: dict, name: str, fn) -> None:
    t0 = time.perf_counter()
    try:
        report[name] = fn()
    except Exception as exc:  # a device run must always yield a report: the section records its error
        report[name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(limit=4)}
    report.setdefault("section_seconds", {})[name] = round(time.perf_counter() - t0, 3)


def _snr_db(ref: np.ndarray, out: np.ndarray) -> float | None:
    """`snr_db` for a JSON report: None when `out` equals `ref` exactly."""
    value = snr_db(ref, out)
    return None if math.isinf(value) else value


def check_parity(bundle_dir: Path, config, controls, windows) -> dict:
    from svc_runtime import Bundle
    from svc_runtime.bundle.binding import ConversionBinding

    ref_bundle = Bundle.load(bundle_dir, "cpu", precision="fp32")
    ref = reference_runs(ref_bundle, windows, controls)
    ref_audio = np.concatenate([r.audio for r in ref])
    out = {"windows": len(windows), "frames": windows[0].frames, "tolerance": PARITY_TOLERANCE}
    for precision in ("fp32", "fp16"):
        bundle = Bundle.load(bundle_dir, config, precision=precision)
        if bundle.manifest.graph_for(ROLE, precision)[1].precision != precision:
            out[precision] = None
            continue
        runs = bound_runs(ConversionBinding(bundle, ROLE), windows, controls)
        audio = np.concatenate([r.audio[0] for r in runs])
        entry = {
            "max_abs_error": float(np.abs(audio - ref_audio).max()),
            "snr_db": _snr_db(ref_audio, audio),
            "f0_max_abs_error_hz": float(max(np.abs(r.f0[0] - q.f0).max() for r, q in zip(runs, ref))),
            "phase_out_equal": all(np.array_equal(r.phase_out[0], q.phase_out) for r, q in zip(runs, ref)),
        }
        if precision == "fp32":
            entry["passes"] = entry["max_abs_error"] <= PARITY_TOLERANCE
        out[precision] = entry
    return out


def _best(fn, repeats: int, sync=lambda: None) -> float:
    fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return min(times)


def check_rtf(bundle_dir: Path, config, checkpoint: Path, model_config: Path, controls, seconds: list[float],
              repeats: int) -> dict:
    import torch

    from svc_runtime import Bundle
    from svc_runtime.bundle.binding import ConversionBinding
    from svc_train import load_generator
    from svc_train.encoders.content_encoder import load_content_encoder
    from svc_train.pitch import NeuralPitchExtractor

    device = "cuda" if config.on_gpu else "cpu"
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    fp32 = Bundle.load(bundle_dir, config, precision="fp32")
    m = fp32.manifest.model
    precisions = ("fp32", "fp16") if config.on_gpu else ("fp32",)
    bindings = {p: ConversionBinding(Bundle.load(bundle_dir, config, precision=p), ROLE) for p in precisions}
    generator = load_generator(checkpoint, model_config).to(device)
    encoder = load_content_encoder(m.speech_encoder, ENCODER_FIXTURE).to(device)
    pitch = NeuralPitchExtractor("fcpe", device=device).network  # the converter graph's pitch network
    out = {"device": device, "repeats": repeats, "lengths": {}}
    for secs in seconds:
        frames = int(round(secs * m.sampling_rate / m.hop_length))
        window = stream_windows(fp32, tone(frames * m.hop_length / m.sampling_rate, m.sampling_rate), frames, 1)[0]
        rng = np.random.default_rng(0)
        c = rng.standard_normal((1, m.ssl_dim, frames)).astype(np.float32)
        f0 = np.full((1, frames), 220.0, np.float32)
        uv = np.ones((1, frames), np.float32)
        row: dict[str, float] = {}
        row["generator_ort_fp32"] = _best(functools.partial(fp32.generate, c, f0, uv, 0, noise_scale=0.4), repeats) / secs
        for p, binding in bindings.items():
            row[f"conversion_graph_{p}"] = _best(functools.partial(binding.run, [window], controls), repeats) / secs
        with torch.inference_mode():
            tc, tf0, tuv = (torch.from_numpy(x).to(device) for x in (c, f0, uv))
            g = torch.zeros(1, dtype=torch.long, device=device)
            infer = functools.partial(generator.infer, f0=tf0, uv=tuv, g=g, noise_scale=0.4)
            row["generator_torch_eager"] = _best(functools.partial(infer, tc), repeats, sync) / secs
            wav16k = torch.from_numpy(window.wav16k[None]).to(device)
            conversion = functools.partial(_eager_conversion, encoder, pitch, infer, wav16k, frames)
            row["conversion_torch_eager"] = _best(conversion, repeats, sync) / secs
        best = min(row[f"conversion_graph_{p}"] for p in precisions)
        row["speedup_conversion_vs_eager"] = row["conversion_torch_eager"] / best
        out["lengths"][f"{secs:g}s"] = row
    return out


def _eager_conversion(encoder, pitch, infer, wav16k, frames: int):
    """PyTorch eager, the networks the converter graph holds: the pitch network's salience (its decoding
    is a few numpy operations, left out), the units stretched to the frames (nearest), the generator."""
    import torch

    pitch(wav16k)
    units = encoder(wav16k)
    n = units.shape[-1]
    idx = torch.clamp(torch.arange(frames, device=units.device) * n // frames, max=n - 1)
    return infer(units[:, :, idx])


def check_streaming(bundle_dir: Path, config, blocks_ms: list[float], blocks: int) -> dict:
    from svc_runtime import Bundle
    from svc_runtime.bundle.sessions import ProviderConfig

    modes: list[tuple[str, object]] = [("host", None), ("bound", config)]
    if config.provider == "cuda":
        modes.append(("bound_cuda_graph", ProviderConfig(provider="cuda", device_id=config.device_id, cuda_graph=True)))
    bundle = Bundle.load(bundle_dir, config)
    sr = bundle.sampling_rate
    out: dict[str, dict] = {"blocks_timed": blocks, "precision": bundle.precision}
    for ms in blocks_ms:
        block = int(round(ms * sr / 1000))
        entry: dict[str, object] = {}
        for mode, device in modes:
            _section(entry, mode, functools.partial(_time_stream, bundle, block, device, blocks))
            if "window_frames" in entry[mode]:
                entry.update(window_frames=entry[mode].pop("window_frames"), latency_ms=entry[mode].pop("latency_ms"))
            if "median_ms" in entry[mode]:
                entry[mode]["median_fraction_of_block"] = entry[mode]["median_ms"] / ms
        out[f"{ms:g}ms"] = entry
    return out


def _time_stream(bundle, block: int, device, blocks: int) -> dict:
    """Per-block wall time of `StreamingConverter.process` (after 3 warm-up blocks) and, through a binding,
    the copies of one steady block."""
    from svc_runtime.streaming import StreamingConverter, StreamingOptions

    sr = bundle.sampling_rate
    stream = StreamingConverter(bundle, block, StreamingOptions(), device=device)
    audio = tone((blocks + 4) * block / sr, sr)  # a block more than fed (float seconds may round one sample short)
    times = []
    for k in range(blocks + 3):
        t0 = time.perf_counter()
        stream.process(audio[k * block : (k + 1) * block])
        times.append(time.perf_counter() - t0)
    times = times[3:]  # the first runs allocate (and capture the CUDA graphs)
    row = {"window_frames": stream.window, "latency_ms": 1000 * stream.latency_seconds,
           "median_ms": 1000 * statistics.median(times), "p95_ms": 1000 * float(np.percentile(times, 95)),
           "max_ms": 1000 * max(times)}
    if stream.binding is not None:
        before = stream.binding.counter.copy()
        stream.process(audio[:block])
        c = stream.binding.counter.since(before)
        row["transfers_per_chunk"] = {"host_to_device": c.host_to_device, "device_to_host": c.device_to_host,
                                      "host_to_device_bytes": c.host_to_device_bytes,
                                      "device_to_host_bytes": c.device_to_host_bytes}
    return row


def load_cuda_libraries() -> str:
    """Load the CUDA runtime, cuBLAS and cuDNN before the first CUDA session: torch's wheels bring them
    (and loading torch maps them), `onnxruntime.preload_dlls` loads the pip `nvidia-*` ones where it exists."""
    import onnxruntime as ort
    import torch

    torch.zeros(1, device="cuda")
    if not hasattr(ort, "preload_dlls"):
        return "torch"
    try:
        ort.preload_dlls()
    except (OSError, RuntimeError) as exc:  # torch's own copies are loaded already: note it and go on
        return f"torch (onnxruntime.preload_dlls: {type(exc).__name__}: {exc})"
    return "torch + onnxruntime.preload_dlls"


def versions(config) -> dict:
    import onnxruntime as ort

    info = {"python": platform.python_version(), "onnxruntime": ort.__version__,
            "onnxruntime_providers": ort.get_available_providers(), "provider": config.provider,
            "cpu": _cpu_model(), "cpu_count": os.cpu_count(), "load_average": list(os.getloadavg())}
    try:
        import torch

        info["torch"] = torch.__version__
        if torch.cuda.is_available():
            info["card"] = torch.cuda.get_device_name(0)
            info["cuda"] = torch.version.cuda
    except ImportError:
        info["torch"] = None
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# --------------------------------------------------------------------------- main


def run_check(provider: str, out: Path, *, size: str = "standard", work: Path | None = None, auto_f0: bool = False,
              seconds: tuple[float, ...] = (10.0, 30.0), blocks_ms: tuple[float, ...] = (20.0, 50.0, 100.0),
              blocks: int = 50, repeats: int = 3, parity_seconds: float = 2.0) -> dict:
    """Run every section on `provider` and write `out/device_check.json`; returns the report."""
    from svc_runtime.bundle.sessions import ProviderConfig
    from svc_runtime.pipeline.window import Controls

    config = ProviderConfig(provider=provider)
    config.ort_providers()  # an unavailable provider is an error now
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, object] = {"provider": provider, "size": size, "role": ROLE, "auto_f0_predictor": auto_f0}
    if config.on_gpu:
        report["cuda_libraries"] = load_cuda_libraries()
    t0 = time.perf_counter()
    model_config, checkpoint, bundle_dir = make_model(work or out / "model", size, auto_f0=auto_f0)
    report["model_build_seconds"] = round(time.perf_counter() - t0, 1)
    from svc_runtime import Bundle

    probe = Bundle.load(bundle_dir, "cpu")
    m = probe.manifest.model
    controls = Controls.create(0.0, 0.4, m.ssl_dim)
    frames = int(round(parity_seconds * m.sampling_rate / m.hop_length))
    windows = stream_windows(probe, tone(3 * frames * m.hop_length / m.sampling_rate, m.sampling_rate), frames, 3)
    report["versions"] = versions(config)
    _section(report, "parity", lambda: check_parity(bundle_dir, config, controls, windows))
    _section(report, "rtf", lambda: check_rtf(bundle_dir, config, checkpoint, model_config, controls, list(seconds),
                                              repeats))
    _section(report, "streaming", lambda: check_streaming(bundle_dir, config, list(blocks_ms), blocks))
    streaming = report["streaming"]
    if "error" not in streaming:
        first = next(v for k, v in streaming.items() if k.endswith("ms"))
        report["transfers_per_chunk"] = first["bound"].get("transfers_per_chunk")
    (out / REPORT).write_text(json.dumps(report, indent=2, allow_nan=False, default=float))
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--provider", choices=("cpu", "cuda"), required=True)
    parser.add_argument("--out", type=Path, required=True, help="folder for device_check.json (and the model)")
    parser.add_argument("--size", choices=("standard", "tiny", "micro"), default="standard")
    parser.add_argument("--work", type=Path, default=None, help="where the model is built (default OUT/model)")
    parser.add_argument("--seconds", default="10,30", help="RTF window lengths, comma-separated")
    parser.add_argument("--blocks", default="20,50,100", help="streaming block sizes in ms, comma-separated")
    parser.add_argument("--stream-blocks", type=int, default=50, help="blocks timed per block size")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--auto-f0", action="store_true",
                        help="keep the F0 predictor (its ONNX If stops CUDA-graph capture)")
    parser.add_argument("--build-only", action="store_true",
                        help="only build and export the model into --work (a device call of its own)")
    args = parser.parse_args(argv)
    if args.build_only:
        if args.work is None:
            parser.error("--build-only needs --work (where the next call finds the model)")
        t0 = time.perf_counter()
        _, _, bundle = make_model(args.work, args.size, auto_f0=args.auto_f0)
        print(f"model built in {time.perf_counter() - t0:.0f} s: {bundle}")
        return
    report = run_check(args.provider, args.out, size=args.size, work=args.work, auto_f0=args.auto_f0,
                       seconds=tuple(float(s) for s in args.seconds.split(",")),
                       blocks_ms=tuple(float(s) for s in args.blocks.split(",")),
                       blocks=args.stream_blocks, repeats=args.repeats)
    print(json.dumps({k: report[k] for k in ("parity", "transfers_per_chunk") if k in report}, indent=2, default=float))
    print(f"report: {args.out / REPORT}")


if __name__ == "__main__":
    main()
