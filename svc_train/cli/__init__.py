"""`svc-train`: dataset preparation, training, and checkpoint tools (torch loads only when a command runs)."""

from svc_train.cli.app import app, main

__all__ = ["app", "main"]
