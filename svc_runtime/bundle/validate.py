"""Load-time checks of a bundle beyond its schema: the manifest JSON's shape, and every graph
file against its manifest entry.

`load_json_object` reads a JSON file that must be an object, refusing deep nesting before the
parser can hit Python's recursion limit. `validate_graphs` reads each graph file's ONNX header
(the graph's inputs and outputs, without loading weights or needing the `onnx` package) and
compares it with the manifest entry's own `inputs` / `outputs` specs: names, dtypes, ranks and
fixed sizes; then the specs' fixed sizes with the model section (speakers, channels, harmonics,
unit width). It works from the specs, so new graph roles are checked the same way.

`probe_graph` runs an open session once on a tiny input built from its manifest entry, for
graphs on the generator's frame grid (named axes only ``batch``, ``frames`` and ``samples``
= frames x hop): a hop that disagrees with the graph fails there, before any file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from svc_runtime.errors import BundleError, SvcError, short_cause

if TYPE_CHECKING:
    from svc_runtime.bundle.manifest import GraphEntry, Manifest
    from svc_runtime.bundle.sessions import GraphSession

MAX_JSON_DEPTH = 64
"""Deepest nesting of objects / lists accepted in a manifest (the real one nests 5 deep)."""
MAX_JSON_BYTES = 64 << 20

ONNX_DTYPES = {
    1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 8: "string",
    9: "bool", 10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 16: "bfloat16",
}
"""ONNX TensorProto.DataType -> the manifest's dtype names."""

MODEL_AXES: dict[str, tuple[int, str]] = {
    "speaker": (-1, "n_speakers"),
    "noise_prior": (1, "inter_channels"),
    "phase": (-1, "n_harmonics"),
    "phase_in": (-1, "n_harmonics"),
    "phase_out": (-1, "n_harmonics"),
    "rand_ini": (-1, "n_harmonics"),
    "sine_noise": (-1, "n_harmonics"),
    "c": (1, "ssl_dim"),
    "units": (1, "ssl_dim"),
    "cluster_centres": (-1, "ssl_dim"),
}
"""Tensor name -> (axis, `model` field) that axis must equal, for graphs of the voice model.
The diffusion graphs (own speaker and unit sizes) are checked by their `diffusion` spec."""

HINT = "re-export the bundle with svc-export (or restore the original files)"


# --------------------------------------------------------------------------- JSON


def json_depth(text: str) -> int:
    """Deepest nesting of [ and { in JSON `text`, outside strings (iterative: no recursion)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def load_json_object(path: str | os.PathLike, error: Callable[[str], Exception] = BundleError) -> dict[str, Any]:
    """The JSON object in `path`; `error(message)` (message starts with the path) when the file is
    too large, not UTF-8, not JSON, nested deeper than MAX_JSON_DEPTH or not an object."""
    p = Path(path)
    size = p.stat().st_size
    if size > MAX_JSON_BYTES:
        raise error(f"{p}: {size / 1e6:.0f} MB is far too large for a manifest; {HINT}")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{p}: not valid JSON (not UTF-8 text: {exc.reason}); {HINT}") from None
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise error(f"{p}: not valid JSON for a manifest (nested {depth} levels deep, at most {MAX_JSON_DEPTH}); "
                    f"{HINT}")
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise error(f"{p}: not valid JSON ({exc}); {HINT}") from None
    if not isinstance(data, dict):
        raise error(f"{p}: the manifest must be a JSON object, got a JSON {type(data).__name__}; {HINT}")
    return data


# --------------------------------------------------------------------------- ONNX header


class _Corrupt(Exception):
    """The bytes are not a well-formed ONNX protobuf."""


@dataclass(frozen=True)
class GraphTensor:
    """One input or output as the graph file declares it: dims are ints, names or None (unknown)."""

    name: str
    dtype: str
    shape: tuple[int | str | None, ...] | None


@dataclass(frozen=True)
class GraphHeader:
    """What an ONNX file declares: its graph's inputs (initializers left out) and outputs."""

    inputs: tuple[GraphTensor, ...]
    outputs: tuple[GraphTensor, ...]
    external_data: frozenset[str] = frozenset()
    """The files its initializers keep their data in (ONNX external data; empty: all in the file)."""


class _Reader:
    """Protobuf wire-format fields of a byte range of a file, skipping large fields by seeking."""

    def __init__(self, f: BinaryIO, end: int) -> None:
        self.f = f
        self.end = end

    def _varint(self) -> int:
        value = shift = 0
        while True:
            b = self.f.read(1)
            if not b:
                raise _Corrupt("truncated varint")
            value |= (b[0] & 0x7F) << shift
            if b[0] < 0x80:
                return value
            shift += 7
            if shift > 63:
                raise _Corrupt("varint too long")

    def fields(self):
        """Yield (field number, wire type, value): ints for varint / fixed, (offset, length) for bytes."""
        while self.f.tell() < self.end:
            key = self._varint()
            number, wire = key >> 3, key & 7
            if number == 0:
                raise _Corrupt("field number 0")
            if wire == 0:
                yield number, wire, self._varint()
            elif wire in (1, 5):
                size = 8 if wire == 1 else 4
                data = self.f.read(size)
                if len(data) != size:
                    raise _Corrupt("truncated fixed field")
                yield number, wire, int.from_bytes(data, "little")
            elif wire == 2:
                length = self._varint()
                start = self.f.tell()
                if start + length > self.end:
                    raise _Corrupt("a field runs past the end of its message")
                yield number, wire, (start, length)
                self.f.seek(start + length)
            else:
                raise _Corrupt(f"wire type {wire}")
        if self.f.tell() != self.end:
            raise _Corrupt("a field runs past the end of its message")

    def sub(self, span: tuple[int, int]) -> _Reader:
        self.f.seek(span[0])
        return _Reader(self.f, span[0] + span[1])

    def text(self, span: tuple[int, int]) -> str:
        self.f.seek(span[0])
        data = self.f.read(span[1])
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise _Corrupt("a name is not UTF-8") from None


def _expect_bytes(wire: int) -> None:
    if wire != 2:
        raise _Corrupt("a message field has the wrong wire type")


def _dims(r: _Reader) -> tuple[int | str | None, ...]:
    dims: list[int | str | None] = []
    for number, wire, value in r.fields():
        if number != 1:
            continue
        _expect_bytes(wire)
        dim: int | str | None = None
        restore = value[0] + value[1]
        for n, w, v in r.sub(value).fields():
            if n == 1 and w == 0:
                dim = v if v < (1 << 63) else v - (1 << 64)
            elif n == 2 and w == 2:
                dim = r.text(v)
        r.f.seek(restore)
        dims.append(dim)
    return tuple(dims)


def _value_info(r: _Reader) -> GraphTensor:
    name, dtype, shape = "", "unknown", None
    for number, wire, value in r.fields():
        if number == 1:
            _expect_bytes(wire)
            name = r.text(value)
        elif number == 2:
            _expect_bytes(wire)
            for n, w, v in r.sub(value).fields():
                if n != 1:
                    continue  # sequence, map, optional: left as "unknown"
                _expect_bytes(w)
                for n2, w2, v2 in r.sub(v).fields():
                    if n2 == 1 and w2 == 0:
                        dtype = ONNX_DTYPES.get(v2, f"onnx type {v2}")
                    elif n2 == 2:
                        _expect_bytes(w2)
                        shape = _dims(r.sub(v2))
            r.f.seek(value[0] + value[1])
    return GraphTensor(name, dtype, shape)


def _initializer(r: _Reader) -> tuple[str | None, set[str]]:
    """An initializer's name and the external data files it refers to (TensorProto fields 8, 13, 14)."""
    name, locations, external = None, set(), False
    for number, wire, value in r.fields():
        if number == 8 and wire == 2:
            name = r.text(value)
        elif number == 14 and wire == 0:
            external = value == 1  # TensorProto.EXTERNAL
        elif number == 13 and wire == 2:
            key = text = None
            for n, w, v in r.sub(value).fields():
                if w == 2 and n in (1, 2):
                    key, text = (r.text(v), text) if n == 1 else (key, r.text(v))
            r.f.seek(value[0] + value[1])
            if key == "location" and text is not None:
                locations.add(text)
    return name, (locations if external else set())


def read_graph_header(path: str | os.PathLike) -> GraphHeader:
    """The declared inputs and outputs of the ONNX file `path`; BundleError when it is not one."""
    p = Path(path)
    inputs: list[GraphTensor] = []
    outputs: list[GraphTensor] = []
    initializers: set[str] = set()
    external: set[str] = set()
    has_graph = has_ir = False
    try:
        with open(p, "rb") as f:
            top = _Reader(f, os.fstat(f.fileno()).st_size)
            for number, wire, value in top.fields():
                if number == 1 and wire == 0:
                    has_ir = True
                if number != 7:
                    continue
                _expect_bytes(wire)
                has_graph = True
                graph = top.sub(value)
                for n, w, v in graph.fields():
                    if n in (5, 11, 12):
                        _expect_bytes(w)
                        item = graph.sub(v)
                        if n == 5:
                            name, locations = _initializer(item)
                            external |= locations
                            if name:
                                initializers.add(name)
                        else:
                            (inputs if n == 11 else outputs).append(_value_info(item))
                        f.seek(v[0] + v[1])
                f.seek(value[0] + value[1])
    except _Corrupt as exc:
        raise BundleError(f"{p}: not an ONNX graph or damaged ({exc})", HINT) from None
    except OSError as exc:
        raise BundleError(f"{p}: cannot be read ({exc.strerror or exc})", HINT) from None
    if not (has_ir and has_graph) or not outputs:
        raise BundleError(f"{p}: not an ONNX graph (no ir_version, graph or graph output found)", HINT)
    inputs = [t for t in inputs if t.name not in initializers]
    return GraphHeader(tuple(inputs), tuple(outputs), frozenset(external))


# --------------------------------------------------------------------------- comparison


def _fmt(shape) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def compare_graph(graph_name: str, entry: GraphEntry, header: GraphHeader, path: Path) -> list[str]:
    """Differences between a manifest entry's inputs / outputs and the graph file's, one line each."""
    problems: list[str] = []
    for kind, specs, declared in (("input", entry.inputs, header.inputs), ("output", entry.outputs, header.outputs)):
        in_graph = {t.name: t for t in declared}
        listed = {s.name for s in specs}
        for name in sorted(set(in_graph) - listed):
            problems.append(f"the graph has {kind} {name!r}, which the manifest does not list")
        for spec in specs:
            actual = in_graph.get(spec.name)
            if actual is None:
                problems.append(f"the manifest lists {kind} {spec.name!r}, which the graph does not have "
                                f"(its {kind}s: {sorted(in_graph)})")
                continue
            if actual.dtype != spec.dtype:
                problems.append(f"{kind} {spec.name!r} is {actual.dtype} in the graph, {spec.dtype} in the manifest")
            if actual.shape is None:
                continue
            if len(actual.shape) != len(spec.shape):
                problems.append(f"{kind} {spec.name!r} has shape {_fmt(actual.shape)} in the graph, "
                                f"{_fmt(spec.shape)} in the manifest")
                continue
            for axis, (want, have) in enumerate(zip(spec.shape, actual.shape)):
                fixed_both = isinstance(want, int) and isinstance(have, int) and have > 0
                fixed_in_graph_only = isinstance(want, str) and isinstance(have, int) and have > 0
                if (fixed_both and want != have) or fixed_in_graph_only:
                    problems.append(f"{kind} {spec.name!r} axis {axis} is {have} in the graph, {want} in the manifest")
    return [f"{path} (graph {graph_name}): {p}" for p in problems]


def compare_model(graph_name: str, entry: GraphEntry, model: Any) -> list[str]:
    """Fixed sizes of the entry's tensors (MODEL_AXES) that disagree with the `model` section."""
    problems = []
    for spec in entry.inputs + entry.outputs:
        rule = MODEL_AXES.get(spec.name)
        if rule is None or len(spec.shape) < (rule[0] + 1 if rule[0] >= 0 else -rule[0]):
            continue
        axis, field = rule
        size = spec.shape[axis]
        expected = getattr(model, field, None)
        if isinstance(size, int) and isinstance(expected, int) and size != expected:
            problems.append(f"graph {graph_name}: {spec.name!r} axis {axis % len(spec.shape)} is {size}, "
                            f"but model.{field} is {expected}")
    return problems


def check_external_data(graph_name: str, entry: GraphEntry, header: GraphHeader, root: Path) -> None:
    """The graph's weights are where its manifest entry says: in the file alone, or in `entry.data_file`
    beside it (which must be a regular file). A BundleError naming the file otherwise."""
    path = root / entry.file
    listed = {entry.data_file} if entry.data_file is not None else set()
    if header.external_data != listed:
        where = ", ".join(sorted(header.external_data)) or "the graph file itself"
        raise BundleError(
            f"{path}: graph {graph_name} keeps its weights in {where}, but manifest.json says "
            f"{entry.data_file or 'the graph file itself'}", HINT)
    if entry.data_file is None:
        return
    data = root / entry.data_file
    if data.is_symlink() and not data.resolve().is_file():
        raise BundleError(f"{data}: external data of graph {graph_name} is a link to {os.readlink(data)}, "
                          "which is not a regular file", HINT)
    if not data.is_file():
        raise BundleError(f"{data}: external data of graph {graph_name} (its weights) listed in manifest.json "
                          "is missing; keep it beside the graph file", HINT)


def validate_graphs(bundle_dir: str | os.PathLike, manifest: Manifest) -> None:
    """Compare every graph file of `manifest` with its entry and the model section; one BundleError
    listing every difference (the first few), or nothing when they agree."""
    from svc_runtime.bundle.bundle import DIFFUSION_ROLES

    root = Path(bundle_dir)
    problems: list[str] = []
    for name, entry in manifest.graphs.items():
        path = root / entry.file
        if path.is_symlink() and not path.resolve().is_file():
            raise BundleError(f"{path}: graph {name} is a link to {os.readlink(path)}, which is not a regular file",
                              HINT)
        if not path.is_file():
            raise BundleError(f"{path}: graph {name} listed in manifest.json is missing", HINT)
        header = read_graph_header(path)
        check_external_data(name, entry, header, root)
        problems += compare_graph(name, entry, header, path)
        if entry.role not in DIFFUSION_ROLES:
            problems += compare_model(name, entry, manifest.model)
    if problems:
        shown = problems[:4] + ([f"... and {len(problems) - 4} more"] if len(problems) > 4 else [])
        raise BundleError(f"{root}: manifest.json disagrees with its graphs: " + "; ".join(shown), HINT)


# --------------------------------------------------------------------------- probe run

PROBE_FRAMES = 16
"""Frames of the probe input (a few hundred ms: long enough for every convolution of the model)."""
_NUMPY = {"float32": np.float32, "float16": np.float16, "int64": np.int64, "int32": np.int32, "bool": np.bool_}


def probe_sizes(manifest: "Manifest", frames: int = PROBE_FRAMES) -> dict[str, int]:
    """Sizes of the named axes for a `frames`-frame probe, from the manifest's own rates: `samples` on the
    generator grid (frames x hop), `wav_samples` / `unit_frames` the same span at the speech encoder's rate
    and frame grid, one cluster centre."""
    model, encoder = manifest.model, manifest.speech_encoder
    wav = (frames * model.hop_length * encoder.sampling_rate + model.sampling_rate // 2) // model.sampling_rate
    return {"batch": 1, "frames": frames, "samples": frames * model.hop_length,
            "decoded_samples": frames * model.hop_length, "wav_samples": wav,  # decode_from probes as 0
            "unit_frames": max(1, wav // encoder.hop_length), "centres": 1}


def probe_axes(entry: "GraphEntry", manifest: "Manifest") -> dict[str, int] | None:
    """`probe_sizes` when `entry` is a graph on the generator's frame grid (a `frames` input axis, every
    named axis known, every input dtype plain), else None."""
    sizes = probe_sizes(manifest)
    named = {d for t in entry.inputs + entry.outputs for d in t.shape if isinstance(d, str)}
    on_grid = any("frames" in t.shape for t in entry.inputs)
    if not on_grid or not named <= set(sizes) or any(t.dtype not in _NUMPY for t in entry.inputs):
        return None
    return sizes


def probe_graph(session: "GraphSession", entry: "GraphEntry", manifest: "Manifest") -> None:
    """Run `session` once on zeros shaped by `entry` (`probe_axes`) and check every output's size; a
    BundleError when the graph fails there or its outputs disagree with the manifest (e.g. its hop)."""
    sizes = probe_axes(entry, manifest)
    if sizes is None:
        return
    hop = manifest.model.hop_length
    feeds = {t.name: np.zeros([sizes[d] if isinstance(d, str) else d for d in t.shape], _NUMPY[t.dtype])
             for t in entry.inputs}
    where = f"graph {session.name} ({entry.file})"
    hint = "the manifest (model.hop_length and the tensor sizes) does not fit the graph; re-export the bundle"
    try:
        outputs = session.run(feeds)
    except (SvcError, ValueError, RuntimeError) as exc:
        if isinstance(exc, MemoryError):
            return  # cannot tell here; the files will say
        cause = exc.cause if hasattr(exc, "cause") else short_cause(exc)
        raise BundleError(f"{where} fails on a {sizes['frames']}-frame probe shaped by the manifest "
                          f"(hop {hop}): {cause}", hint) from None
    for spec in entry.outputs:
        value = outputs.get(spec.name)
        if value is None:
            continue
        want = [sizes[d] if isinstance(d, str) else d for d in spec.shape]
        if list(value.shape) != want:
            got = "x".join(map(str, value.shape))
            extra = ""
            axis_name = next((d for d in ("samples", "decoded_samples") if d in spec.shape), None)
            if axis_name is not None and value.ndim == len(want):
                axis = spec.shape.index(axis_name)
                extra = f": {value.shape[axis] / sizes['frames']:g} samples per frame, the manifest's hop is {hop}"
            raise BundleError(f"{where} returns {spec.name} of shape {got} for {sizes['frames']} frames, the "
                              f"manifest says {_fmt(spec.shape)} = {'x'.join(map(str, want))}{extra}", hint)


def probe_open_graphs(bundle, names: set[str] | None = None) -> set[str]:
    """`probe_graph` on the sessions `bundle` has open (graphs of the voice model, not diffusion), or only
    those among `names`; returns the names of the graphs it probed."""
    from svc_runtime.bundle.bundle import DIFFUSION_ROLES

    probed = set()
    for session in list(bundle.sessions.values()):
        entry = bundle.manifest.graphs.get(session.name)
        if entry is None or entry.role in DIFFUSION_ROLES or (names is not None and session.name not in names):
            continue
        probe_graph(session, entry, bundle.manifest)
        probed.add(session.name)
    return probed
