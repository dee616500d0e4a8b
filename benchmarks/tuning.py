"""ONNX Runtime session settings for our runtime, tried on a loaded bundle without touching its code.

Each variant re-opens the bundle's graphs with its own `SessionOptions` and swaps the
sessions in (same `run(feeds) -> outputs` surface as `svc_runtime.bundle.sessions.OrtSession`).
`default` keeps the runtime's own sessions (ORT_ENABLE_ALL, intra-op threads as given, idle
threads not spinning: `ProviderConfig.allow_spinning` is off on the CPU by default); every other
variant has spinning off too except `spin`, the runtime's setting before that default changed.
The `conv2d` variants rewrite 1-D convolutions as 2-D on a copy of each graph; bundles from
svc-export already carry that pass (manifest `exporter.graph_passes`), so on them they only
matter for older bundles.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

VARIANTS: dict[str, str] = {
    "default": "the runtime's sessions: ORT_ENABLE_ALL, sequential, intra-op threads = --threads, spinning off "
               "(the runtime's CPU default)",
    "spin": "as default, idle intra-/inter-op threads spin-wait (ONNX Runtime's own default; the runtime's "
            "before allow_spinning)",
    "basic_opt": "graph optimisation ORT_ENABLE_BASIC instead of ALL, spinning off",
    "one_thread": "intra-op threads 1, spinning off",
    "conv2d": "spinning off, every graph's 1-D convolutions run as 2-D (svc_export.conv2d; no change on "
              "bundles that already carry the pass)",
}

_NUMPY = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(float16)": np.float16}


def session_options(variant: str, threads: int) -> ort.SessionOptions:
    """The `SessionOptions` of `variant` (see VARIANTS)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown tuning variant {variant!r}; choose one of {sorted(VARIANTS)}")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_BASIC if variant == "basic_opt" else ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    )
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = 1 if variant.endswith("one_thread") else threads
    spinning = "1" if variant == "spin" else "0"
    options.add_session_config_entry("session.intra_op.allow_spinning", spinning)
    options.add_session_config_entry("session.inter_op.allow_spinning", spinning)
    return options


class TunedSession:
    """One graph in ONNX Runtime (CPU) with explicit `SessionOptions`."""

    def __init__(self, name: str, path: Path, options: ort.SessionOptions) -> None:
        self.name = name
        self._session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        self.provider = self._session.get_providers()[0]
        self.input_names = tuple(i.name for i in self._session.get_inputs())
        self.output_names = tuple(o.name for o in self._session.get_outputs())
        self._dtypes = {i.name: _NUMPY.get(i.type) for i in self._session.get_inputs()}

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = [n for n in self.input_names if n not in feeds]
        if missing:
            raise ValueError(f"graph {self.name}: missing inputs {missing}")
        ready = {n: np.ascontiguousarray(feeds[n], dtype=self._dtypes[n]) for n in self.input_names}
        return dict(zip(self.output_names, self._session.run(list(self.output_names), ready)))


def apply_variant(converter, variant: str, threads: int) -> None:
    """Swap every graph session of `converter.bundle` for one opened with `variant`'s options."""
    if variant == "default":
        return
    bundle = converter.bundle
    options = session_options(variant, threads)
    for role, current in list(bundle.sessions.items()):
        path = bundle.path / bundle.manifest.graphs[current.name].file
        if variant.startswith("conv2d"):
            path = conv2d_copy(path)
        bundle.sessions[role] = TunedSession(current.name, path, options)


def conv2d_copy(graph: Path) -> Path:
    """The 2-D-convolution rewrite of `graph`, cached next to its bundle folder."""
    from svc_export.conv2d import rewrite_file

    target = graph.parent.parent / f"{graph.stem}.conv2d.onnx"
    if not target.is_file() or target.stat().st_mtime < graph.stat().st_mtime:
        partial = target.with_suffix(".partial")
        rewrite_file(graph, partial)
        partial.replace(target)
    return target
