"""svc_runtime: the lean conversion runtime (numpy + ONNX Runtime; never torch or librosa)."""

__all__: list[str] = []

from svc_runtime.bundle import Bundle  # noqa: E402

__all__.append("Bundle")

from svc_runtime.pipeline import ConvertOptions, Converter  # noqa: E402
from svc_runtime.streaming import StreamingConverter, StreamingOptions  # noqa: E402

__all__ += ["ConvertOptions", "Converter", "StreamingConverter", "StreamingOptions"]
