"""`svc-train`: dataset preparation, training, and checkpoint tools."""

from svc_train.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
