"""What our pipeline still holds after converting one long input, by owner (numpy buffers).

    python -m benchmarks.memory_breakdown [--size micro] [--seconds 120]

Writes the input to a wav file, then decodes, prepares, renders and writes it as `svc-run convert`
does, under tracemalloc: per stage the Python heap held before it, its own peak above that, and
the process's VmHWM after it (ONNX Runtime's working memory shows there, not in tracemalloc); then
sums the arrays kept by the prepared file's segments (noise-field block caches, features), by the
converter's reusable batch buffers, the output and the source. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import tracemalloc
from pathlib import Path

import soundfile

from benchmarks.inputs import SAMPLE_RATE, concatenated
from benchmarks.models import ensure_models
from benchmarks.ours import OursConverter
from svc_runtime.audio.decode import decode_audio
from svc_runtime.audio.write import write_audio_atomic

MIB = 2**20


def _hwm_mib() -> float:
    """This process's resident-set high-water mark (VmHWM)."""
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def breakdown(size: str, seconds: float) -> dict:
    models = ensure_models(size)
    ours = OursConverter(models.bundle, pitch=models.pitch)
    samples, source = concatenated(seconds)
    stages: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="svc-memory-") as tmp:
        wav = Path(tmp) / "input.wav"
        soundfile.write(wav, samples, SAMPLE_RATE, subtype="PCM_16")
        del samples
        tracemalloc.start()

        def stage(name: str, fn):
            """Run one stage; record its own heap peak above what was held before it, and VmHWM after it."""
            held = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            result = fn()
            current, peak = tracemalloc.get_traced_memory()
            stages[name] = {"held_before_mib": held / MIB, "peak_above_held_mib": (peak - held) / MIB,
                            "held_after_mib": current / MIB, "rss_hwm_after_mib": _hwm_mib()}
            return result

        held = {"decoded": stage("decode", lambda: decode_audio(wav))}  # popped: not kept past preparing
        prepared = stage("prepare", lambda: ours.converter.prepare(held.pop("decoded")))
        after_prepare = tracemalloc.get_traced_memory()[0]
        [audio] = stage("render", lambda: ours.converter.render([prepared]))
        after_render = tracemalloc.get_traced_memory()[0]
        stage("write", lambda: write_audio_atomic(Path(tmp) / "output.wav", audio, ours.sr))
        tracemalloc.stop()
    segments = prepared.segments
    return {
        "size": size, "input_seconds": seconds, "input": source, "segments": len(segments),
        "stages": stages,
        "traced_after_prepare_mib": after_prepare / MIB, "traced_after_render_mib": after_render / MIB,
        "traced_peak_mib": max(v["held_before_mib"] + v["peak_above_held_mib"] for v in stages.values()),
        "output_mib": audio.nbytes / MIB,
        "noise_caches_mib": sum(v.nbytes for s in segments for v in s.noise._cache.values()) / MIB,
        # after rendering a slice keeps only f0, uv and phases; units, volume and speaker weights are released
        "segment_features_mib": sum(a.nbytes for s in segments
                                    for a in (s.c, s.c_columns, s.f0, s.uv, s.vol, s.speaker, s.phase)
                                    if a is not None) / MIB,
        "converter_buffers": len(ours.converter._buffers),
        "converter_buffers_mib": sum(v.nbytes for v in ours.converter._buffers.values()) / MIB,
        # the input at the model rate is kept only for the loudness mix (None otherwise)
        "source_mib": 0.0 if prepared.source is None else prepared.source.nbytes / MIB,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="micro")
    parser.add_argument("--seconds", type=float, default=120.0)
    args = parser.parse_args(argv)
    sys.stdout.write(json.dumps(breakdown(args.size, args.seconds)) + "\n")


if __name__ == "__main__":
    main()
