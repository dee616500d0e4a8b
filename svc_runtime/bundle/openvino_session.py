"""Running one ONNX graph with OpenVINO's CPU plugin (the `openvino` package, optional extra).

The same `run(feeds) -> outputs` surface as the ONNX Runtime sessions, on the same bundle
graph files (OpenVINO reads ONNX itself; no second export). Dynamic axes stay dynamic:
one compiled model serves every length and batch. The compiled model is stored in
OpenVINO's model cache (`CACHE_DIR`), so a second start-up skips compilation.

In bf16, the part of a graph under `F32_ISLANDS` (the pitch network, the NSF source's convolutions) is cut out
into a model of its own and compiled in f32; the rest is compiled in bf16 and takes the island's
outputs as inputs (`split_f32_islands`).
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from pathlib import Path

import numpy as np

from svc_runtime.bundle.sessions import ProviderConfig, ProviderUnavailableError, checked_feeds
from svc_runtime.errors import graph_run, loading_graph

log = logging.getLogger(__name__)

INSTALL_HINT = 'pip install "svc-toolkit[openvino]" (or pip install openvino)'
_OV_PRECISIONS = {"fp32": "f32", "bf16": "bf16"}
_OV_HINTS = {"latency": "LATENCY", "throughput": "THROUGHPUT"}
_INT32 = np.iinfo(np.int32)
_INT64_SENTINELS = (np.iinfo(np.int64).min, -np.iinfo(np.int64).max, np.iinfo(np.int64).max)
"""'No limit' values (clamps, slice bounds), which OpenVINO handles whatever the precision."""
_INDEX_OPS = ("Slice", "StridedSlice")
"""Ops whose int64 inputs are index bounds, clamped to the tensor (any value is safe)."""
F32_ISLANDS = ("/pitch/", "/m_source/")
"""Module scopes that a bf16 compile keeps in f32, as a model of their own (with what they are computed from):
- the conversion graph's pitch network (FCPE with its mel front end and salience decoding). In bf16 its F0 moves
  ~1 Hz and the NSF phase integrates that: 22.7 dB SNR from ONNX Runtime fp32 on the standard-size random model,
  41 dB with the island in f32 (5 and 10 s, benchmarks/results/backends_converter.json).
- the NSF source (`m_source`: the harmonic sines from the carried phases). In bf16 the sines' arguments lose
  their precision: moving one part at a time into an f32 prefix of the standard generator (5 s) gave 39.9 dB all
  bf16, 39.9 dB with the prior and flow in f32, 40.3 dB with conv_post, 49.6-49.9 dB with the source (and the
  convolutions that inject it); on the conversion graph 41.1 -> 49.5 dB.
A scope whose ops depend on an `If` (the auto-F0 branch of a conversion graph of a model with an F0 predictor) is
left in bf16: OpenVINO computes an If's inputs before its condition, so that island would recompute the speech
encoder (measured: 408 -> 638 ms for 5 s, 39 -> 78 ms for a 0.3 s live window). Also marking the export's fp32
scopes (F0 fill, phase track, coarse pitch, encoder front end) or keeping the whole speech encoder in f32 left the
conversion graph at 41.1 dB. Marking nodes instead (runtime info `DisablePrecisionConversion`,
settable from Python only through an IR round trip, honoured by OpenVINO 2026.4's CPU plugin) leaks: nodes that
the plugin's own passes create (MatMul -> FullyConnected, Conv1d -> Conv2d reshapes, PReLU -> LeakyRelu, Pad-12 ->
Pad-1) drop the mark and run in bf16; with every such leak in the pitch network patched, its F0 still moved
0.06 Hz (37.8 dB)."""
_ISLAND_INPUT = "f32_island:{}"


def default_cache_dir() -> Path:
    """Where compiled models are cached: `$XDG_CACHE_HOME/svc-toolkit/openvino` (~/.cache/... by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "svc-toolkit" / "openvino"


@functools.cache
def _core():
    """One OpenVINO `Core` per process (it loads the device plugins)."""
    try:
        import openvino
    except ImportError as exc:
        raise ProviderUnavailableError(f"provider 'openvino' needs the openvino package: {INSTALL_HINT}") from exc
    return openvino.Core()


def openvino_available() -> bool:
    """True when the openvino package imports."""
    try:
        _core()
    except RuntimeError:
        return False
    return True


def cpu_has_bf16() -> bool:
    """True when OpenVINO's CPU plugin can compute in bf16 natively (AVX512-BF16 or AMX)."""
    return "BF16" in _core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def onnx_io_names(path: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The ONNX file's graph input and output names, in order (OpenVINO's compiled ports carry
    extra merged tensor names, e.g. `f0` also as the name of a removed Cast's output)."""
    from openvino.frontend import FrontEndManager

    model = FrontEndManager().load_by_framework("onnx").load(str(path))
    return tuple(p.get_names()[0] for p in model.get_inputs()), tuple(p.get_names()[0] for p in model.get_outputs())


def _has_port(ports, name: str) -> bool:
    return any(name in port.get_names() for port in ports)


def _port_index(ports, name: str, graph: str) -> int:
    """Index of the compiled port that carries tensor `name`."""
    for index, port in enumerate(ports):
        if name in port.get_names():
            return index
    raise RuntimeError(f"graph {graph}: OpenVINO's compiled model has no port named {name!r}")


def compile_config(config: ProviderConfig) -> dict[str, str]:
    """The `compile_model` properties for `config`. The precision is always set: OpenVINO's own
    default on a CPU with bf16 is bf16, and fp32 must stay fp32. bf16 does not use the model cache."""
    properties = {
        "PERFORMANCE_HINT": _OV_HINTS[config.performance_hint],
        "INFERENCE_PRECISION_HINT": _OV_PRECISIONS[config.inference_precision],
    }
    if config.intra_op_threads:
        properties["INFERENCE_NUM_THREADS"] = str(config.intra_op_threads)
    cache = default_cache_dir() if config.ov_cache_dir is None else config.ov_cache_dir
    if str(cache) and config.inference_precision != "bf16":
        # bf16 compiles every time: with OpenVINO 2026.4's model cache, a conversion graph compiled in bf16 after
        # its fp32 compile (one process, one CACHE_DIR) ran to all-NaN audio, and so did later loads of that entry
        properties["CACHE_DIR"] = str(cache)
    return properties


def wide_int64_constants(path: Path) -> list[str]:
    """Names of the graph's int64 constants beyond the int32 range (other than the int64 min / max
    sentinels and slice bounds): a graph holding one computes int64 values that OpenVINO's CPU plugin, which runs
    int64 in int32, gets wrong (e.g. a fixed-point phase modulo 2^40, as schema-2 conversion graphs carried it;
    schema 3 carries it in int32 limbs whose sums stay below 2^24, and passes)."""
    import openvino

    wide = []
    for op in _core().read_model(str(path)).get_ops():
        if op.get_type_name() != "Constant" or op.get_element_type() != openvino.Type.i64:
            continue
        if all(t.get_node().get_type_name() in _INDEX_OPS for t in op.output(0).get_target_inputs()):
            continue
        values = op.get_data()
        outside = (values < _INT32.min) | (values > _INT32.max)
        if np.any(outside & ~np.isin(values, _INT64_SENTINELS)):
            wide.append(op.get_friendly_name())
    return wide


def _island_ops(model, scopes: tuple[str, ...]) -> set[str]:
    """Friendly names of the ops under `scopes`, with the ops OpenVINO's ONNX frontend made while
    decomposing them (generated names without a '/', e.g. a LayerNormalization's MVN) that sit
    between two of them."""
    ops = model.get_ops()
    inside = {op.get_friendly_name() for op in ops if any(s in op.get_friendly_name() for s in scopes)}

    def generated(op) -> bool:
        return "/" not in op.get_friendly_name() and op.get_type_name() not in ("Constant", "Parameter", "Result")

    def reaches(op, step) -> bool:
        seen, stack = set(), list(step(op))
        while stack:
            node = stack.pop()
            name = node.get_friendly_name()
            if name in inside:
                return True
            if generated(node) and name not in seen:
                seen.add(name)
                stack += step(node)
        return False

    def up(op):
        return [i.get_source_output().get_node() for i in op.inputs()]

    def down(op):
        return [t.get_node() for o in op.outputs() for t in o.get_target_inputs()]

    return inside | {op.get_friendly_name() for op in ops if generated(op) and reaches(op, up) and reaches(op, down)}


def _below_control_flow(model, scope: str) -> bool:
    """Whether an op under `scope` is computed from an `If` (see `F32_ISLANDS`)."""
    stack = [op for op in model.get_ops() if scope in op.get_friendly_name()]
    seen = set()
    while stack:
        op = stack.pop()
        if op.get_type_name() == "If":
            return True
        if op.get_friendly_name() in seen:
            continue
        seen.add(op.get_friendly_name())
        stack += [i.get_source_output().get_node() for i in op.inputs()]
    return False


def split_f32_islands(path: Path, scopes: tuple[str, ...] = F32_ISLANDS):
    """(island, rest, found): the graph at `path` cut where tensors leave the ops under `scopes` (constants aside).

    island: those tensors as outputs (`f32_island:<k>`), from the graph inputs they need. rest: the whole
    graph with those tensors as inputs of the same names, so no island op runs there. found: the scopes that
    have ops in this graph. None when no op is under `scopes` or nothing leaves them.
    """
    import openvino

    model = _core().read_model(str(path))
    scopes = tuple(s for s in scopes if not _below_control_flow(model, s))
    inside = _island_ops(model, scopes) if scopes else set()
    cut = []
    for op in model.get_ops():
        if op.get_friendly_name() not in inside or op.get_type_name() == "Constant":
            continue
        for output in op.outputs():
            if any(t.get_node().get_friendly_name() not in inside for t in output.get_target_inputs()):
                cut.append((op.get_friendly_name(), output.get_index()))
    if not cut:
        return None
    by_name = {op.get_friendly_name(): op for op in model.get_ops()}
    results = []
    for k, (name, index) in enumerate(cut):
        result = openvino.opset13.result(by_name[name].output(index))
        result.output(0).set_names({_ISLAND_INPUT.format(k)})
        results.append(result)
    needed, seen, stack = set(), set(), list(results)
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if node.get_type_name() == "Parameter":
            needed.add(node.get_friendly_name())
        stack += [i.get_source_output().get_node() for i in node.inputs()]
    parameters = [p for p in model.get_parameters() if p.get_friendly_name() in needed]
    island = openvino.Model(results, parameters, "f32_island")

    rest = _core().read_model(str(path))  # a second copy: the island keeps the first one's nodes
    by_name = {op.get_friendly_name(): op for op in rest.get_ops()}
    inputs = []
    for k, (name, index) in enumerate(cut):
        output = by_name[name].output(index)
        parameter = openvino.opset13.parameter(output.get_partial_shape(), output.get_element_type(),
                                               name=_ISLAND_INPUT.format(k))
        # the tensor's own names go with it: a graph output computed in the island is still found by name
        parameter.output(0).set_names({_ISLAND_INPUT.format(k), *output.get_names()})
        for target in list(output.get_target_inputs()):
            if target.get_node().get_friendly_name() not in inside:
                target.replace_source_output(parameter.output(0))
        inputs.append(parameter)
    rest.add_parameters(inputs)
    rest = openvino.Model(rest.get_results(), list(rest.get_parameters()), rest.get_friendly_name())
    found = tuple(s for s in scopes if any(s in name for name in inside))
    return island, rest, found


def check_int32_range(graph: str, feeds: dict[str, np.ndarray]) -> None:
    """Refuse int64 inputs outside the int32 range: OpenVINO's CPU plugin computes int64 tensors
    in int32 (int64 types pass through, values beyond +-2^31 wrap silently)."""
    for name, value in feeds.items():
        if value.dtype == np.int64 and value.size and (value.min() < _INT32.min or value.max() > _INT32.max):
            raise ValueError(
                f"graph {graph}: input {name} holds int64 values beyond the int32 range, which OpenVINO's "
                "CPU plugin computes in int32 (they would wrap); run this graph with provider 'cpu'"
            )


class OpenVinoSession:
    """One graph compiled by OpenVINO for the CPU; a single infer request, used under a lock.

    Inputs are cast to the graph's declared dtypes (float32, int64, ...) as ONNX Runtime's
    session does; outputs are fresh numpy arrays (the request's buffers are reused per run).
    int64 tensors keep their type, but OpenVINO computes them in int32: a graph with int64
    inputs or outputs is refused at load when it holds int64 constants beyond the int32 range
    (`wide_int64_constants`), and inputs beyond that range are refused at run time
    (`check_int32_range`). A graph that grows int64 values past 2^31 by other means would still
    compute them wrongly here, and so would integer Div / Mod past 2^24, which the CPU plugin
    computes through float32 (Add, Sub, Mul and CumSum are exact). The conversion graphs (roles
    converter, converter_f0, synthesis) run here: their NSF phase state is int32 limbs whose
    arithmetic stays below 2^24 (docs/bundle.md, "Phases").

    In bf16, a graph with ops under `F32_ISLANDS` runs as two compiled models: the island in f32
    (`f32_island`), then the rest in bf16 with the island's outputs as inputs.
    """

    def __init__(self, name: str, path: Path, config: ProviderConfig) -> None:
        core = _core()
        if config.inference_precision == "bf16" and not cpu_has_bf16():
            raise ProviderUnavailableError(
                f"graph {name}: inference precision bf16 needs a CPU with AVX512-BF16 or AMX "
                "(lscpu flags avx512_bf16 / amx_bf16); use fp32 on this CPU"
            )
        properties = compile_config(config)
        if "CACHE_DIR" in properties:
            Path(properties["CACHE_DIR"]).mkdir(parents=True, exist_ok=True)
        self._island, islands = None, ()
        with loading_graph(name, path):
            split = split_f32_islands(path) if config.inference_precision == "bf16" else None
            if split is None:
                self._compiled = core.compile_model(str(path), "CPU", properties)
            else:
                island, rest, islands = split
                self._island = core.compile_model(island, "CPU", {**properties, "INFERENCE_PRECISION_HINT": "f32"})
                self._compiled = core.compile_model(rest, "CPU", properties)
            self.input_names, self.output_names = onnx_io_names(path)
        self._request = self._compiled.create_infer_request()
        self._island_request = None if self._island is None else self._island.create_infer_request()
        self._lock = threading.Lock()
        self.name = name
        precision = config.inference_precision
        islands = f"; {', '.join(islands)} in f32" if islands else ""
        threads = self._compiled.get_property("INFERENCE_NUM_THREADS")
        self.provider = f"OpenVINO CPU ({precision}, {threads} threads{islands})"
        inputs, outputs = self._compiled.inputs, self._compiled.outputs
        island_inputs = () if self._island is None else self._island.inputs
        self._input_ports = {n: _port_index(inputs, n, name) for n in self.input_names if _has_port(inputs, n)}
        self._island_ports = {n: _port_index(island_inputs, n, name) for n in self.input_names
                              if _has_port(island_inputs, n)}
        self._output_ports = {n: _port_index(outputs, n, name) for n in self.output_names}
        self._island_links = [] if self._island is None else [
            (output, _port_index(inputs, output.get_any_name(), name)) for output in self._island.outputs]
        self._input_dtypes = {}
        for ports, by_name in ((island_inputs, self._island_ports), (inputs, self._input_ports)):
            self._input_dtypes.update({n: ports[i].get_element_type().to_dtype() for n, i in by_name.items()})
        missing = [n for n in self.input_names if n not in self._input_dtypes]
        if missing:
            model = core.read_model(str(path))
            self._input_dtypes.update({p.get_any_name(): p.get_element_type().to_dtype() for p in model.inputs
                                       if p.get_any_name() in missing})
        if any(port.get_element_type().to_dtype() == np.int64 for port in (*inputs, *outputs)):
            wide = wide_int64_constants(path)
            if wide:
                raise ProviderUnavailableError(
                    f"graph {name} ({Path(path).name}) computes int64 values beyond the int32 range (constants "
                    f"{', '.join(wide[:3])}), which OpenVINO's CPU plugin computes in int32; run it with provider 'cpu'"
                )
        log.info("graph %s (%s) runs on %s", name, Path(path).name, self.provider)

    def input_rank(self, name: str) -> int | None:
        """The rank of graph input `name` as compiled (None when it is dynamic)."""
        if name in self._input_ports:
            port = self._compiled.inputs[self._input_ports[name]]
        else:
            port = self._island.inputs[self._island_ports[name]]
        rank = port.get_partial_shape().rank
        return rank.get_length() if rank.is_static else None

    @property
    def f32_island(self):
        """The compiled f32 island of a bf16 session (None when the whole graph runs in one precision)."""
        return self._island

    @graph_run
    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feeds = checked_feeds(self.name, self.input_names, self._input_dtypes, feeds)
        check_int32_range(self.name, feeds)
        by_port = {self._input_ports[n]: value for n, value in feeds.items() if n in self._input_ports}
        with self._lock:
            if self._island_request is not None:
                self._island_request.infer({self._island_ports[n]: feeds[n] for n in self._island_ports})
                for output, index in self._island_links:
                    by_port[index] = self._island_request.get_tensor(output)
            self._request.infer(by_port)
            return {n: np.array(self._request.get_output_tensor(i).data) for n, i in self._output_ports.items()}
