"""What our pipeline still holds after converting one long input, by owner (numpy buffers).

    python -m benchmarks.memory_breakdown [--size micro] [--seconds 120]

Runs `Converter.prepare` + `render` on one input under tracemalloc and sums the arrays kept by
the prepared file's segments (noise-field block caches, features, outputs), by the converter's
reusable batch buffers, and the source. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tracemalloc

from benchmarks.inputs import SAMPLE_RATE, concatenated
from benchmarks.models import ensure_models
from benchmarks.ours import OursConverter
from svc_runtime.audio.decode import DecodedAudio

MIB = 2**20


def breakdown(size: str, seconds: float) -> dict:
    models = ensure_models(size)
    ours = OursConverter(models.bundle, pitch=models.pitch)
    samples, source = concatenated(seconds)
    tracemalloc.start()
    prepared = ours.converter.prepare(DecodedAudio(samples=samples, sample_rate=SAMPLE_RATE, channels=1))
    after_prepare, _ = tracemalloc.get_traced_memory()
    ours.converter.render([prepared])
    after_render, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    segments = prepared.segments
    return {
        "size": size, "input_seconds": seconds, "input": source, "segments": len(segments),
        "traced_after_prepare_mib": after_prepare / MIB, "traced_after_render_mib": after_render / MIB,
        "traced_peak_mib": peak / MIB,
        "noise_caches_mib": sum(v.nbytes for s in segments for v in s.noise._cache.values()) / MIB,
        # after rendering a slice keeps only f0, uv and phases; units, volume and speaker weights are released
        "segment_features_mib": sum(a.nbytes for s in segments
                                    for a in (s.c, s.f0, s.uv, s.vol, s.speaker, s.phase) if a is not None) / MIB,
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
