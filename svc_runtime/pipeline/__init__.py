"""Whole-file conversion with a bundle: slicing, features, generator, stitching (numpy + ONNX Runtime).

Names load on first use (PEP 562): `svc_runtime.pipeline.options` imports without ONNX Runtime.
"""

from __future__ import annotations

from svc_runtime.lazy import lazy_getattr

_EXPORTS = {
    "ConvertOptions": "svc_runtime.pipeline.options",
    "Converter": "svc_runtime.pipeline.convert",
    "PreparedFile": "svc_runtime.pipeline.convert",
    "NoiseStream": "svc_runtime.pipeline.noise",
    "SpeakerMix": "svc_runtime.pipeline.spkmix",
    "SpeakerMixError": "svc_runtime.pipeline.spkmix",
    "load_speaker_mix": "svc_runtime.pipeline.spkmix",
    "parse_speaker_mix": "svc_runtime.pipeline.spkmix",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
