"""The three CLIs share one layout: explicit registration, light imports (fast --help that works
without torch / onnx), defaults from the options dataclasses, one exit-code table, unwrapped
and escaped messages, and one line naming the extra for a missing optional dependency."""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from svc_runtime.cli.base import EXIT_CODES_EPILOG, OPTIONAL_MODULES, ExitCode

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
CLIS = {  # console script -> module whose main() it runs (pyproject's [project.scripts])
    "svc-run": "svc_runtime.cli",
    "svc-train": "svc_train.cli",
    "svc-export": "svc_export.cli",
}
HEAVY = ("torch", "onnx", "onnxruntime", "librosa", "transformers", "faiss", "matplotlib", "scipy")
# A runtime-only install: the training / export stack is absent (importing any of it fails).
BLOCK_HEAVY = "import sys\nfor _m in ('torch', 'onnx', 'onnxslim', 'librosa', 'transformers', 'tensorrt'):\n    sys.modules[_m] = None\n"


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _run_cli(script: str, args: list[str], prelude: str = "", env: dict | None = None, cwd: Path | None = None):
    """Run a console script's main() in a fresh interpreter (stdout/stderr are pipes: not a TTY)."""
    code = prelude + (
        f"import sys\nsys.argv = [{script!r}, *{args!r}]\nfrom {CLIS[script]} import main\nmain()\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})}, cwd=cwd)


def test_console_scripts_point_at_the_shared_runner():
    scripts = _pyproject()["project"]["scripts"]
    assert scripts == {name: f"{module}:main" for name, module in CLIS.items()}


def test_optional_modules_name_their_real_extra():
    """Every import name the CLIs map to an extra is listed under that extra in pyproject.toml."""
    extras = _pyproject()["project"]["optional-dependencies"]
    for module, (extra, distribution) in OPTIONAL_MODULES.items():
        names = [req.split(">")[0].split("=")[0].split("[")[0].strip().lower() for req in extras[extra]]
        assert distribution.lower() in names, f"{module}: {distribution} is not in the {extra} extra"


@pytest.mark.parametrize("script", sorted(CLIS))
def test_help_is_fast_imports_nothing_heavy_and_shows_no_bool_types(script):
    """`--help` (and every sub-command's) loads no heavy module and costs well under 1 s of CPU."""
    code = (
        f"import sys\nfrom {CLIS[script]} import app\nfrom svc_runtime.cli.base import run\n"
        "import typer.main\n"
        "group = typer.main.get_command(app)\n"
        "names = sorted(getattr(group, 'commands', {}))\n"
        "for name in [None, *names]:\n"
        "    try:\n"
        "        run(app, ([name] if name else []) + ['--help'])\n"
        "    except SystemExit as e:\n"
        "        assert e.code == 0, (name, e.code)\n"
        f"print('HEAVY', [m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "COLUMNS": "100"})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout
    assert "<bool>" not in result.stdout
    assert "Exit codes: 0 done" in " ".join(result.stdout.split())
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert cpu < 1.0, f"{script}: help of every command took {cpu:.2f} s of CPU"


@pytest.mark.parametrize("script", sorted(CLIS))
def test_help_works_without_the_training_and_export_stack(script):
    result = _run_cli(script, ["--help"], prelude=BLOCK_HEAVY)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_extra_is_one_line_naming_it(tmp_path):
    result = _run_cli("svc-train", ["init", "-c", str(tmp_path / "c.json"), "-o", str(tmp_path / "G_0.pth")],
                      prelude=BLOCK_HEAVY)
    assert result.returncode == ExitCode.MISSING_EXTRA
    assert result.stderr.strip() == 'error: torch is not installed: pip install "svc-toolkit[train]"'
    prelude = "import sys\nsys.modules['onnxruntime'] = None\n"
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "manifest.json").write_text("{}")
    audio = tmp_path / "a.wav"
    audio.write_bytes(b"")
    result = _run_cli("svc-run", ["convert", str(audio), "-m", str(bundle), "-o", str(tmp_path / "out")],
                      prelude=prelude)
    assert result.returncode == ExitCode.MISSING_EXTRA, result.stderr
    assert 'pip install "svc-toolkit[cpu]"' in result.stderr and "Traceback" not in result.stderr
    result = _run_cli("svc-run", ["convert", str(audio), "-m", str(bundle), "-o", str(tmp_path / "out"),
                                  "--f0-method", "pm"], prelude="import sys\nsys.modules['parselmouth'] = None\n")
    assert result.returncode == ExitCode.MISSING_EXTRA, result.stderr
    assert 'pip install "svc-toolkit[classic]"' in result.stderr and "internal error" not in result.stderr


def test_commands_register_explicitly_without_import_cycles():
    """No command module imports its app (no registration by import side effect, no app <-> command
    cycle); each app.py registers every command of its folder."""
    import ast

    from svc_runtime.cli.app import app as run_app
    from svc_train.cli.app import app as train_app

    for folder in (ROOT / "svc_runtime" / "cli", ROOT / "svc_train" / "cli"):
        for module in folder.glob("*.py"):
            if module.name in ("__init__.py", "app.py"):
                continue
            tree = ast.parse(module.read_text())
            imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
            assert not any(m and m.endswith("cli.app") for m in imported), f"{module.name} imports the app"
            decorators = [d for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) for d in node.decorator_list]
            assert not any("app" in ast.unparse(d) for d in decorators), f"{module.name} registers by decorator"
    assert sorted(c.name for c in run_app.registered_commands) == ["convert", "info", "pitch"]
    command_modules = [p for p in (ROOT / "svc_train" / "cli").glob("*.py")
                       if not p.name.startswith("_") and p.name != "app.py"]
    assert len(train_app.registered_commands) == len(command_modules) == 11


def test_convert_options_are_the_dataclass_fields_with_its_defaults():
    import inspect

    from svc_runtime.cli.convert_cmd import convert
    from svc_runtime.pipeline.options import ConvertOptions

    params = inspect.signature(convert).parameters
    for field in dataclasses.fields(ConvertOptions):
        assert field.name in params, f"ConvertOptions.{field.name} has no option"
        assert params[field.name].default.default == field.default, field.name


def test_same_letter_same_meaning_across_the_clis():
    """-o is always the output, -c the config, -m the model (bundle or model folder), -j workers."""
    import typer.main

    from svc_export.cli import app as export_app
    from svc_runtime.cli.app import app as run_app
    from svc_train.cli.app import app as train_app

    meaning: dict[str, set[str]] = {}
    for app in (run_app, train_app, export_app):
        group = typer.main.get_command(app)
        commands = getattr(group, "commands", None) or {app.info.name: group}
        for command in commands.values():
            for param in command.params:
                for opt in param.opts:
                    if len(opt) == 2 and opt.startswith("-"):
                        meaning.setdefault(opt, set()).add(param.opts[0] if param.opts[0] != opt else param.name)
    assert meaning["-o"] <= {"--output", "--out-dir"}
    assert meaning["-c"] == {"--config"}
    assert meaning["-m"] <= {"--bundle", "--model-dir"}
    assert meaning["-j"] == {"--workers"}
    assert "-m" not in {o for p in typer.main.get_command(run_app).commands["pitch"].params for o in p.opts}


def test_exit_codes_are_documented_in_the_readme():
    readme = " ".join((ROOT / "README.md").read_text().split())
    for code in ExitCode:
        assert f"`{int(code)}`" in readme, f"exit code {int(code)} is not in the README"
    assert "Exit codes" in EXIT_CODES_EPILOG


def test_long_paths_stay_whole_in_narrow_non_tty_output(tmp_path):
    """Errors with a long path, under COLUMNS=40 and no terminal: one line each, the path unbroken,
    brackets in user text printed as written."""
    deep = tmp_path / ("a_rather_long_folder_name_[with]_brackets_" * 3) / "and_deeper_still"
    deep.mkdir(parents=True)
    env = {"COLUMNS": "40", "TERM": "dumb"}
    cases = [
        ("svc-run", ["convert", str(deep / "song.wav"), "-m", str(deep / "nope"), "-o", str(deep / "out")],
         str(deep / "song.wav")),
        ("svc-run", ["info", str(deep / "nope")], str(deep / "nope" / "manifest.json")),
        ("svc-train", ["config", str(deep / "dataset"), "-o", str(deep / "c.json"), "--speech-encoder", "vec768l12"],
         str(deep / "dataset")),
        ("svc-export", [str(deep / "G_1.pth"), "-c", str(deep / "config.json"), "-o", str(deep / "bundle")],
         str(deep / "G_1.pth")),
    ]
    for script, args, path in cases:
        result = _run_cli(script, args, env=env)
        assert result.returncode == ExitCode.USAGE, (script, result.stderr)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), (script, result.stderr)
        assert path in lines[0], (script, lines[0])
    # an existing file as the output folder: refused before any model is loaded
    taken = deep / "taken"
    taken.write_text("x")
    result = _run_cli("svc-run", ["convert", str(deep / "song.wav"), "-m", str(deep / "nope"), "-o", str(taken)],
                      env=env)
    assert result.returncode == ExitCode.USAGE
    assert result.stderr.strip() == f"error: {taken}: exists and is not a folder; choose another --out-dir"


def test_config_reads_the_encoder_width_and_refuses_a_mismatch(tmp_path):
    import numpy as np
    import soundfile

    encoder = ROOT / "tests" / "fixtures" / "contentvec_small" / "hf"  # 64-d units
    for speaker in ("a", "b"):
        (tmp_path / "ds" / speaker).mkdir(parents=True)
        for i in range(2):
            soundfile.write(tmp_path / "ds" / speaker / f"{i}.wav", np.full(22050, 0.01, np.float32), 44100)
    base = ["config", str(tmp_path / "ds"), "-o", str(tmp_path / "c.json"), "--filelists", str(tmp_path / "fl")]
    result = _run_cli("svc-train", base + ["-e", str(encoder)])
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "c.json").read_text())["model"]["ssl_dim"] == 64
    result = _run_cli("svc-train", base + ["-e", str(encoder), "--set", "model.ssl_dim=768"])
    assert result.returncode == ExitCode.USAGE and "model.ssl_dim=768 disagrees with the 64-wide units" in result.stderr
    result = _run_cli("svc-train", base + ["--speech-encoder", "whisper-ppg-huge"])
    assert result.returncode == ExitCode.USAGE and "unknown speech encoder 'whisper-ppg-huge'" in result.stderr
    from svc_train.encoders import ENCODER_SPECS

    assert all(name in result.stderr for name in ENCODER_SPECS)
