"""svc_export: ONNX / TensorRT export of so-vits-svc 4.1 models into a self-describing bundle."""

__all__: list[str] = []
