"""Trace a module to ONNX, check it, simplify it, and prove it against PyTorch.

One opset for every graph: 17 runs on ONNX Runtime >= 1.14 and TensorRT >= 8.6
(LayerNormalization is a single op from 17 on).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import onnxruntime as ort
import torch
from google.protobuf.message import EncodeError

from svc_export.conv2d import rewrite_model
from svc_export.graph_files import (
    EXTERNAL_DATA_THRESHOLD,
    check_graph,
    data_file_of,
    external_locations,
    infer_shapes,
    replace_if_valid,
    save_graph,
)
from svc_runtime.signal.nsf_phase import limbs_to_phase

OPSET = 17

log = logging.getLogger(__name__)


class ParityError(RuntimeError):
    """An exported graph's outputs differ from the PyTorch module's beyond the stated tolerance."""


class PassSkipped(RuntimeError):
    """A graph pass could not run on a graph and left it as it was; the message says why (recorded)."""


class GraphExportError(RuntimeError):
    """torch.onnx could not trace a module into a graph (an operator or shape it cannot express)."""


@dataclass(frozen=True)
class TensorSpecSketch:
    """A graph input or output: name, dtype and shape with named dynamic axes (str) or fixed sizes (int)."""

    name: str
    dtype: str
    shape: tuple[int | str, ...]


@dataclass
class GraphPlan:
    """Everything needed to export one graph and prove it.

    module: takes the inputs positionally in the order of `inputs`, returns one tensor
        or a tuple in the order of `outputs`.
    make_inputs: (length, seed) -> example inputs by name; `length` is the graph's dynamic
        length (frames or samples) for the parity runs.
    lengths: the dynamic lengths of the parity runs (three different ones); the first is
        also the tracing example.
    tolerance: max abs error allowed per output name (fp32 graph vs torch).
    """

    name: str
    role: str
    module: torch.nn.Module
    inputs: tuple[TensorSpecSketch, ...]
    outputs: tuple[TensorSpecSketch, ...]
    make_inputs: Callable[[int, int], dict[str, torch.Tensor]]
    lengths: tuple[int, ...]
    tolerance: dict[str, float]
    batch: int = 1
    meta: dict[str, object] = field(default_factory=dict)

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        axes = {}
        for spec in self.inputs + self.outputs:
            named = {i: d for i, d in enumerate(spec.shape) if isinstance(d, str)}
            if named:
                axes[spec.name] = named
        return axes


@dataclass(frozen=True)
class ParityResult:
    """Max abs error of one output at one length, against `reference`."""

    graph: str
    output: str
    length: int
    max_abs_error: float
    tolerance: float
    reference: str = "torch"

    @property
    def ok(self) -> bool:
        return bool(np.isfinite(self.max_abs_error)) and self.max_abs_error <= self.tolerance


def export_onnx(
    plan: GraphPlan, path: Path, opset: int = OPSET, external_data_threshold: int = EXTERNAL_DATA_THRESHOLD,
) -> Path | None:
    """Trace `plan.module` with the TorchScript exporter into `path` (opset `opset`); the graph's
    external data file (``<path name>.data``, `svc_export.graph_files`) when the graph is larger than
    `external_data_threshold` bytes, else None.

    torch.onnx writes a graph past 2 GiB as one file per weight; it traces into a scratch folder
    and the result is saved again with every weight in one data file.
    """
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix=f".{path.stem}.trace-", dir=path.parent) as scratch:
        traced = Path(scratch) / path.name
        _export_quietly(plan, traced, opset)
        inline = not external_locations(onnx.load(str(traced), load_external_data=False))
        if inline and traced.stat().st_size <= external_data_threshold:
            traced.replace(path)
            (path.parent / f"{path.name}.data").unlink(missing_ok=True)
            return None
        return save_graph(onnx.load(str(traced)), path, threshold=external_data_threshold)


def _export_quietly(plan: GraphPlan, path: Path, opset: int) -> None:
    example = plan.make_inputs(plan.lengths[0], 0)
    args = tuple(example[spec.name] for spec in plan.inputs)
    captured = io.StringIO()
    quiet = contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured)
    with torch.no_grad(), warnings.catch_warnings(), quiet[0], quiet[1], _native_output_silenced():
        warnings.simplefilter("ignore")  # tracer warnings about Python ints are expected and checked by parity
        try:
            _trace(plan, args, path, opset)
        except RuntimeError as exc:  # torch.onnx's OnnxExporterError and SymbolicValueError included
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise GraphExportError(f"graph {plan.name}: torch.onnx could not export it: {first_line}") from exc


@contextlib.contextmanager
def _native_output_silenced():
    """Swallow what torch's C++ side writes to fds 1 and 2 while tracing (a failed export dumps its IR)."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def _trace(plan: GraphPlan, args: tuple[torch.Tensor, ...], path: Path, opset: int) -> None:
    torch.onnx.export(
        plan.module,
        args,
        str(path),
        dynamo=False,
        input_names=[s.name for s in plan.inputs],
        output_names=[s.name for s in plan.outputs],
        dynamic_axes=plan.dynamic_axes(),
        opset_version=opset,
        do_constant_folding=True,
    )


def check_onnx(path: Path) -> onnx.ModelProto:
    """Run the ONNX checker (full check, with shape inference) and return the model (weights from
    its external data file included)."""
    check_graph(path)
    return onnx.load(str(path))


def simplify_onnx(path: Path) -> tuple[int, int]:
    """Constant-fold and simplify the graph with onnxslim in place; (nodes before, nodes after).

    The result replaces the file only when it passes the checker; parity runs afterwards anyway.
    A graph with external data stays so. Raises `PassSkipped` when onnxslim cannot handle the graph
    (e.g. past 2 GiB, where it needs to serialise the whole model); the graph is then kept as it was.
    """
    import onnxslim

    model = onnx.load(str(path))
    before = len(model.graph.node)
    captured = io.StringIO()
    try:
        with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
            slimmed = onnxslim.slim(model)
    except (ValueError, RuntimeError, MemoryError, EncodeError, onnx.checker.ValidationError) as exc:
        if data_file_of(path) is None:
            raise
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise PassSkipped(f"onnxslim cannot simplify {path.name} with external data: {first_line}") from exc
    if slimmed is None or len(slimmed.graph.node) >= before:
        return before, before
    after = len(slimmed.graph.node)
    if not replace_if_valid(path, slimmed, ".slim", "onnxslim produced an invalid graph for {name} ({error}); "
                            "kept the unsimplified one"):
        return before, before
    return before, after


def convs_as_2d(path: Path) -> int:
    """Rewrite the graph's 1-D convolutions as 2-D ones in place (`svc_export.conv2d`: ONNX
    Runtime's faster NCHWc kernels); the number rewritten. Runs before parity, which proves it.

    The result replaces the file only when it passes the checker (else the graph stays 1-D, with a warning).
    """
    model, count = rewrite_model(onnx.load(str(path)))
    if count == 0:
        return 0
    valid = replace_if_valid(path, model, ".conv2d.onnx",
                             "the conv1d -> conv2d pass made an invalid graph of {name} ({error}); kept the 1-D one")
    return count if valid else 0


def float64_tensors(model: onnx.ModelProto | Path) -> list[str]:
    """Names of the graph's double-precision values (TensorRT has no float64). A path is inferred
    by path (past 2 GiB and with external data too)."""
    if isinstance(model, onnx.ModelProto):
        inferred = infer_shapes(model)
    else:
        path = Path(model)
        with tempfile.TemporaryDirectory(prefix=f".{path.stem}.shapes-", dir=path.parent) as scratch:
            target = Path(scratch) / path.name
            onnx.shape_inference.infer_shapes_path(str(path), str(target))
            inferred = onnx.load(str(target), load_external_data=False)
    values = list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)
    return [v.name for v in values if v.type.tensor_type.elem_type == onnx.TensorProto.DOUBLE]


def ort_session(path: Path, threads: int = 1, *, half: bool = False) -> ort.InferenceSession:
    """A CPU session. half: an fp16 graph, run without ORT's layout optimisations (level ALL
    crashes ONNX Runtime's CPU provider on some fp16 conv graphs)."""
    options = ort.SessionOptions()
    if half:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def _as_tuple(value) -> tuple[torch.Tensor, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def torch_parity(plan: GraphPlan, path: Path) -> list[ParityResult]:
    """Run the graph in ONNX Runtime (CPU) and the module in PyTorch at every length of the plan."""
    session = ort_session(path)
    results = []
    for index, length in enumerate(plan.lengths):
        inputs = plan.make_inputs(length, index + 1)
        with torch.no_grad():
            expected = _as_tuple(plan.module(*(inputs[s.name] for s in plan.inputs)))
        feeds = {s.name: inputs[s.name].numpy() for s in plan.inputs}
        actual = session.run([s.name for s in plan.outputs], feeds)
        for spec, want, got in zip(plan.outputs, expected, actual):
            want = want.numpy()
            if want.shape != got.shape:
                raise ParityError(
                    f"graph {plan.name}: output {spec.name} has shape {list(got.shape)} in ONNX Runtime but "
                    f"{list(want.shape)} in PyTorch at length {length}"
                )
            error = _max_error(want, got, plan.meta.get("circular", {}).get(spec.name))
            results.append(ParityResult(plan.name, spec.name, length, error, plan.tolerance[spec.name]))
    return results


def _max_error(want: np.ndarray, got: np.ndarray, period: int | None = None) -> float:
    """Largest absolute difference; with `period`, the distance on a circle of that size (carried phases)."""
    if not want.size:
        return 0.0
    if period is not None:
        if want.dtype == np.int32:  # carried phases as int32 limbs [..., 3, H]: compare the values they stand for
            want, got = limbs_to_phase(want), limbs_to_phase(got)
        diff = np.mod(want.astype(np.int64) - got.astype(np.int64), period)
        return float(np.max(np.minimum(diff, period - diff)))
    return float(np.max(np.abs(want.astype(np.float64) - got.astype(np.float64))))


def graph_parity(
    plan: GraphPlan, path: Path, reference: Path, reference_name: str, tolerance: dict[str, float]
) -> list[ParityResult]:
    """Compare graph `path` (fp16) with `reference` (fp32) of the same plan in ONNX Runtime (CPU)."""
    session, ref_session = ort_session(path, half=True), ort_session(reference)
    names = [s.name for s in plan.outputs]
    results = []
    for index, length in enumerate(plan.lengths):
        inputs = plan.make_inputs(length, index + 1)
        feeds = {s.name: inputs[s.name].numpy() for s in plan.inputs}
        got = session.run(names, feeds)
        want = ref_session.run(names, feeds)
        for name, a, b in zip(names, got, want):
            error = _max_error(b, a, plan.meta.get("circular", {}).get(name))
            results.append(ParityResult(plan.name, name, length, error, tolerance[name], reference_name))
    return results


def require_parity(results: list[ParityResult]) -> None:
    """Raise `ParityError` naming every output and length above its tolerance."""
    failed = [r for r in results if not r.ok]
    if failed:
        lines = ", ".join(
            f"{r.output} at length {r.length}: {r.max_abs_error:.3g} > {r.tolerance:g} (vs {r.reference})"
            for r in failed
        )
        raise ParityError(f"graph {failed[0].graph} fails parity: {lines}")
