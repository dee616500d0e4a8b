"""svc_runtime: the lean conversion runtime (numpy + ONNX Runtime; never torch or librosa).

The public names load on first use (PEP 562), so that `svc-run --help` and the light
modules (signal, audio, cli) import without ONNX Runtime.
"""

from __future__ import annotations

from svc_runtime.lazy import lazy_getattr

_EXPORTS = {
    "Bundle": "svc_runtime.bundle",
    "ConvertOptions": "svc_runtime.pipeline.options",
    "Converter": "svc_runtime.pipeline.convert",
    "StreamingConverter": "svc_runtime.streaming",
    "StreamingOptions": "svc_runtime.streaming",
}

__all__ = list(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
