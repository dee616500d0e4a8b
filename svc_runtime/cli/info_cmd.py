"""`svc-run info BUNDLE`: what a bundle holds, from its manifest (no graph is loaded)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from svc_runtime.cli.base import ExitCode, fail
from svc_runtime.cli.base import console as make_console


def _shape(shape) -> str:
    return escape("[" + ", ".join(str(d) for d in shape) + "]")


def _summary(manifest, bundle: Path) -> list[Table]:
    model = manifest.model
    about = Table(title="model", show_header=False, title_justify="left")
    rows = [
        ("sample rate / hop", f"{model.sampling_rate} Hz / {model.hop_length}"),
        ("speakers", ", ".join(f"{name}={sid}" for name, sid in sorted(model.speakers.items(), key=lambda x: x[1]))),
        ("units", f"{manifest.speech_encoder.name} (dim {model.ssl_dim}, {manifest.speech_encoder.sampling_rate} Hz, "
                  f"hop {manifest.speech_encoder.hop_length}), unit_interpolate_mode {model.unit_interpolate_mode}"),
        ("volume embedding", str(model.vol_embedding).lower()),
        ("automatic f0 prediction", str(model.use_automatic_f0_prediction).lower()),
        ("NSF source", f"{model.n_harmonics} sines, phase increments at {model.nsf_source_sampling_rate} Hz"),
    ]
    if manifest.pitch is not None:
        p = manifest.pitch
        rows.append(("pitch", f"{p.method}, threshold {p.threshold:g}, {p.sampling_rate} Hz / hop {p.hop_length}, "
                              f"{p.f0_min:g}-{p.f0_max:g} Hz"))
    rows.append(("exported with", ", ".join(f"{k} {v}" for k, v in manifest.exporter.items())))
    for key, value in rows:
        about.add_row(key, escape(value))

    graphs = Table(title="graphs", title_justify="left")
    for column in ("name", "precision", "file", "MB", "max parity error"):
        graphs.add_column(column)
    tensors = Table(title="graph inputs and outputs", title_justify="left")
    for column in ("role", "", "tensor", "dtype", "shape"):
        tensors.add_column(column)
    seen_roles = set()
    for name, g in manifest.graphs.items():
        files = [g.file] + ([g.data_file] if g.data_file else [])  # data_file: its weights (ONNX external data)
        size = sum((bundle / f).stat().st_size / 1e6 if (bundle / f).is_file() else float("nan") for f in files)
        worst = max(g.parity, key=lambda r: r.max_abs_error, default=None)
        parity = f"{worst.max_abs_error:.2e} vs {worst.reference}" if worst else "-"
        graphs.add_row(escape(name), g.precision, escape(" + ".join(files)), f"{size:.1f}", parity)
        if g.role not in seen_roles:
            seen_roles.add(g.role)
            for kind, specs in (("in", g.inputs), ("out", g.outputs)):
                for t in specs:
                    tensors.add_row(g.role, kind, t.name, t.dtype, _shape(t.shape))
    tables = [about, graphs, tensors]
    if manifest.engines:
        engines = Table(title="TensorRT engines", title_justify="left")
        for column in ("graph", "file", "precision", "TensorRT", "GPU", "profile"):
            engines.add_column(column)
        for e in manifest.engines.values():
            profile = "\n".join(
                escape(f"{n}: {list(r.min)}..{list(r.opt)}..{list(r.max)}") for n, r in e.profile.items()
            )
            engines.add_row(e.graph, e.file, e.precision, e.tensorrt_version, f"{e.gpu} (sm {e.compute_capability})",
                            profile)
        tables.append(engines)
    if manifest.aux_files:
        aux = Table(title="other files", title_justify="left")
        for column in ("kind", "file", "format", "speaker"):
            aux.add_column(column)
        for a in manifest.aux_files:
            aux.add_row(a.kind, escape(a.file), a.format, escape(a.speaker or "-"))
        tables.append(aux)
    return tables


def info(
    bundle: Path = typer.Argument(..., help="Bundle folder written by svc-export."),
    verify: bool = typer.Option(True, "--verify/--no-verify", help="Check every file's sha256 against the manifest."),
) -> None:
    """Print the summary of a bundle's manifest.json (and verify its files)."""
    from svc_runtime.bundle.bundle import verify_files
    from svc_runtime.bundle.manifest import Manifest
    from svc_runtime.bundle.validate import validate_graphs
    from svc_runtime.errors import BundleError

    console = make_console(stderr=False)
    try:
        manifest = Manifest.read(bundle)
        if verify:
            verify_files(bundle, manifest)
            validate_graphs(bundle, manifest)
    except BundleError as exc:
        fail(str(exc), ExitCode.USAGE)
    console.print(f"[bold]{escape(str(bundle))}[/]: svc bundle, schema version {manifest.schema_version}")
    for table in _summary(manifest, bundle):
        console.print(table)
    if verify:
        console.print(f"[green]all {len(manifest.files())} files match their sha256[/]")
