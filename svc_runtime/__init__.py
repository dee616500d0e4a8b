"""svc_runtime: the lean conversion runtime (numpy + ONNX Runtime; never torch or librosa)."""

__all__: list[str] = []

from svc_runtime.bundle import Bundle  # noqa: E402

__all__.append("Bundle")
