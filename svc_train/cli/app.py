"""The `svc-train` typer application; each sub-command lives in its own module."""

import typer

app = typer.Typer(
    name="svc-train",
    help="Prepare data, train a so-vits-svc 4.1 voice, and manage checkpoints.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
)

# Sub-commands register themselves on `app` when imported.
from svc_train.cli import commands  # noqa: E402,F401
