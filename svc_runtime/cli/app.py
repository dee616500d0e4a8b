"""The `svc-run` typer application; each sub-command lives in its own module."""

import typer

app = typer.Typer(
    name="svc-run",
    help="Convert singing or speech with an exported bundle (ONNX Runtime / TensorRT, no PyTorch).",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
)

# Sub-commands register themselves on `app` when imported.
from svc_runtime.cli import commands  # noqa: E402,F401
