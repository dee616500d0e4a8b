"""`svc-run`: the runtime command line (numpy + ONNX Runtime, never torch; nothing heavy at import)."""

from svc_runtime.cli.app import app, main

__all__ = ["app", "main"]
