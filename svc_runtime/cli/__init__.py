"""`svc-run`: the runtime command line (numpy + ONNX Runtime, never torch at import)."""

from svc_runtime.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
