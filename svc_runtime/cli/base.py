"""What `svc-run`, `svc-train` and `svc-export` share: one layout, exit codes, unwrapped messages,
missing-extra errors.

Layout: each CLI's `app.py` builds its app with :func:`new_app` and registers every command
explicitly with :func:`register` (command modules never import the app, so nothing registers
as an import side effect); its `main()` is :func:`run`. Command modules import only light
modules at import time, so `--help` never loads torch, onnx or ONNX Runtime.

Messages go to stderr through :func:`console`: never hard-wrapped (a path stays on one
line in any log), and user text is escaped so that brackets such as ``svc-toolkit[train]``
print as written.
"""

from __future__ import annotations

import functools
import sys
import traceback
from collections.abc import Callable
from enum import IntEnum
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from svc_runtime.errors import EXIT_FAILED, EXIT_SIGINT, EXIT_SIGTERM, EXIT_USAGE, REPORT_HINT, SvcError


class ExitCode(IntEnum):
    """Exit status of every command, by kind of outcome (the same in all three CLIs)."""

    OK = 0
    FAILED = EXIT_FAILED  # the work ran and something failed: a file, a check, a training run
    USAGE = EXIT_USAGE  # bad option, input, model or bundle, found before any work (nothing written)
    MISSING_EXTRA = 3  # an optional dependency is not installed; the message names the extra
    INTERRUPTED = EXIT_SIGINT  # Ctrl-C / SIGINT
    TERMINATED = EXIT_SIGTERM  # SIGTERM (a scheduler stopping the job)


EXIT_CODES_EPILOG = (
    "Exit codes: 0 done; 1 the work failed (a file, a check, a run); 2 bad option, input, model or "
    "bundle, nothing done; 3 an optional dependency is missing (the message names the extra); "
    "130 interrupted (Ctrl-C); 143 terminated (SIGTERM)."
)

# Import name -> (extra, distribution) for every optional dependency; pyproject.toml lists the
# distribution under that extra (tests/test_cli_layout.py checks it).
OPTIONAL_MODULES: dict[str, tuple[str, str]] = {
    "onnxruntime": ("cpu", "onnxruntime"),
    "pyworld": ("classic", "pyworld"),
    "parselmouth": ("classic", "praat-parselmouth"),
    "torch": ("train", "torch"),
    "librosa": ("train", "librosa"),
    "transformers": ("train", "transformers"),
    "tensorboard": ("train", "tensorboard"),
    "faiss": ("train", "faiss-cpu"),
    "matplotlib": ("train", "matplotlib"),
    "yaml": ("train", "pyyaml"),
    "pyloudnorm": ("train", "pyloudnorm"),
    "onnx": ("export", "onnx"),
    "onnxslim": ("export", "onnxslim"),
    "tensorrt": ("trt", "tensorrt"),
}


def install_hint(module: str) -> str | None:
    """`pip install ...` advice for a missing optional module (None: not an optional dependency)."""
    root = module.split(".")[0]
    if root not in OPTIONAL_MODULES:
        return None
    extra, distribution = OPTIONAL_MODULES[root]
    if root == "onnxruntime":
        return ('ONNX Runtime is not installed: pip install "svc-toolkit[cpu]" '
                '(or "svc-toolkit[gpu]" for CUDA; never both)')
    return f'{distribution} is not installed: pip install "svc-toolkit[{extra}]"'


def console(stderr: bool = True) -> Console:
    """A console that never wraps printed text; off a terminal, tables get room instead of folding paths."""
    stream = sys.stderr if stderr else sys.stdout
    wide = None if stream.isatty() else 10_000
    return Console(stderr=stderr, soft_wrap=True, highlight=False, width=wide)


def say(message: str, style: str | None = None, label: str | None = None, stderr: bool = True) -> None:
    """Print one line; ``message`` is user text (escaped), ``label`` a short styled prefix."""
    prefix = f"[{style}]{label}[/] " if label and style else (f"{label} " if label else "")
    text = escape(message) if not style or label else f"[{style}]{escape(message)}[/]"
    console(stderr).print(prefix + text)


def warn(message: str, label: str = "note") -> None:
    say(message, style="yellow", label=label)


def fail(message: str, code: ExitCode = ExitCode.USAGE) -> NoReturn:
    """Print ``error: message`` (one unwrapped line, escaped) and exit with ``code``."""
    say(message, style="bold red", label="error:")
    raise typer.Exit(int(code))


def new_app(name: str, help: str) -> typer.Typer:
    """A CLI app with the shared settings (rich help, exit codes in the epilog)."""
    return typer.Typer(
        name=name, help=help, epilog=EXIT_CODES_EPILOG, no_args_is_help=True, add_completion=False,
        rich_markup_mode="rich", pretty_exceptions_enable=False,
    )


def register(app: typer.Typer, function: Callable[..., Any], name: str | None = None, **settings: Any) -> None:
    """Add ``function`` as a command of ``app``. A failure the user can act on (`SvcError`) becomes
    one line with its exit code; a missing optional dependency one line naming the extra (exit 3)."""

    @functools.wraps(function)
    def command(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except ModuleNotFoundError as error:
            hint = install_hint(error.name or "")
            if hint is None:
                raise
            fail(hint, ExitCode.MISSING_EXTRA)
        except SvcError as error:  # a failure the user can act on: one line, its own exit code
            fail(str(error), ExitCode(error.exit_code))

    settings.setdefault("epilog", EXIT_CODES_EPILOG)
    app.command(name, **settings)(command)


# click's ClickException (typer may vendor its own click, so it is found through BadParameter).
_CLICK_ERROR: type[Exception] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def _hide_flag_types(command: Any) -> None:
    """Flags take no value: show no `<bool>` type next to them (options, and every --help)."""
    for param in getattr(command, "params", ()):
        if getattr(param, "is_flag", False):
            param.metavar = ""
    original = command.get_help_option

    def help_option(ctx: Any) -> Any:
        option = original(ctx)
        if option is not None:
            option.metavar = ""
        return option

    command.get_help_option = help_option
    for sub in getattr(command, "commands", {}).values():
        _hide_flag_types(sub)


def run(app: typer.Typer, args: list[str] | None = None) -> NoReturn:
    """Run ``app`` as a console script; usage errors print as one `error:` line and exit 2."""
    command = typer.main.get_command(app)
    _hide_flag_types(command)
    try:
        code = command.main(args=args, prog_name=app.info.name, standalone_mode=False)
    except _CLICK_ERROR as error:
        where = getattr(getattr(error, "ctx", None), "command_path", None) or app.info.name
        say(f"{error.format_message()} (see: {where} --help)", style="bold red", label="error:")
        raise SystemExit(error.exit_code) from None
    except typer.Abort:
        raise SystemExit(int(ExitCode.INTERRUPTED)) from None
    except Exception:
        traceback.print_exc()
        say(f"internal error; {REPORT_HINT}", style="bold red", label="error:")
        raise SystemExit(int(ExitCode.FAILED)) from None
    raise SystemExit(code if isinstance(code, int) else 0)


__all__ = [
    "EXIT_CODES_EPILOG",
    "OPTIONAL_MODULES",
    "ExitCode",
    "console",
    "fail",
    "install_hint",
    "new_app",
    "register",
    "run",
    "say",
    "warn",
]
