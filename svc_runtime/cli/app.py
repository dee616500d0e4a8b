"""The `svc-run` application: every sub-command registered here, explicitly."""

from __future__ import annotations

from svc_runtime.cli import convert_cmd, info_cmd, pitch_cmd
from svc_runtime.cli.base import new_app, register, run

app = new_app(
    "svc-run",
    "Convert singing or speech with an exported bundle (ONNX Runtime / TensorRT, no PyTorch).",
)
register(app, convert_cmd.convert, "convert")
register(app, pitch_cmd.pitch, "pitch", help=pitch_cmd.PITCH_HELP, no_args_is_help=True)
register(app, info_cmd.info, "info")


def main() -> None:
    run(app)
