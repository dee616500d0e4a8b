"""svc_runtime: the lean conversion runtime (numpy + ONNX Runtime; never torch or librosa)."""

__all__: list[str] = []
