"""The bundle's `manifest.json`: a versioned, typed schema, validated on load.

The manifest is the contract with every host (Python, C++, ...): it names each
graph and engine file with its sha256, input/output names, dtypes and shapes
(dynamic axes as strings such as ``"batch"``, ``"frames"``, ``"samples"``), and
the model's sample rates, hop sizes, speakers, speech encoder and pitch method.
The schema is documented in ``docs/bundle.md``.
"""

from __future__ import annotations

import json
import re
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping, get_args

from svc_runtime.bundle.validate import load_json_object
from svc_runtime.errors import BundleError
from svc_runtime.schema import Dialect, Invalid, Rule, coerce, positive, read_dataclass
from svc_runtime.vocabulary import UnitInterpolateMode

FORMAT = "svc-bundle"
SCHEMA_VERSION = 3
"""3: the conversion graphs carry the NSF phase as int32 limbs [B, 3, H] (2 had int64 [B, H], which OpenVINO
and TensorRT compute in 32 bits); 2: the conversion graphs (roles converter, converter_f0, synthesis); 1 had none."""
MANIFEST_NAME = "manifest.json"

Dtype = Literal["float32", "float16", "int64", "int32", "bool"]
Precision = Literal["fp32", "fp16", "int8"]
"""int8: CPU-only graphs (svc-export --int8) with fp32 inputs and outputs."""
GraphRole = Literal[
    "converter", "converter_f0", "synthesis", "generator", "f0_predictor", "speech_encoder", "pitch",
    "diffusion_condition", "diffusion_denoiser", "vocoder",
]
"""The shallow-diffusion roles' graphs are described by the manifest's `diffusion` section
(`svc_runtime.diffusion.spec.DiffusionSpec`), read with the manifest."""
AuxKind = Literal["index", "cluster", "diffusion"]
DTYPES: tuple[str, ...] = get_args(Dtype)
PRECISIONS: tuple[str, ...] = get_args(Precision)
GRAPH_ROLES: tuple[str, ...] = get_args(GraphRole)
AUX_KINDS: tuple[str, ...] = get_args(AuxKind)
UNIT_INTERPOLATE_MODES: tuple[str, ...] = get_args(UnitInterpolateMode)  # ModelInfo.unit_interpolate_mode
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_AXIS_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ManifestError(BundleError):
    """`manifest.json` is missing, malformed or does not match the schema."""


# --------------------------------------------------------------------------- field types


def _is_file_name(value: str) -> bool:
    return bool(value) and "/" not in value and "\\" not in value and value not in (".", "..", MANIFEST_NAME)


def _is_axis(value: int | str) -> bool:
    return value > 0 if isinstance(value, int) else _AXIS_NAME.match(value) is not None


PositiveInt = Annotated[int, positive]
Sha256 = Annotated[str, Rule(lambda v: _SHA256.match(v) is not None, "expected 64 lower-case hex digits")]
FileName = Annotated[str, Rule(_is_file_name, "must be a plain file name inside the bundle")]
Axis = Annotated[int | str, Rule(_is_axis, "expected a positive integer or an axis name")]
"""One dimension of a shape: fixed (a positive integer) or dynamic (an axis name such as "frames")."""


class _ManifestDialect(Dialect):
    """The manifest's wording, ``<field path>: <what is wrong>`` (the file is prefixed by `Manifest.read`);
    null reads as absent, as hosts write it."""

    null_is_missing = True

    def not_mapping(self, where: str, path: str, value: Any) -> str:
        return f"{path or 'the manifest'}: expected an object, got {type(value).__name__}"

    def missing(self, where: str, path: str, hint: Any) -> str:
        return f"{path}: required field is missing"

    def wrong_type(self, where: str, path: str, hint: Any, value: Any) -> str:
        got = "a boolean" if isinstance(value, bool) else type(value).__name__
        return f"{path}: expected {_kind_name(hint)}, got {got}"

    def not_one_of(self, where: str, path: str, choices: tuple, value: Any) -> str:
        return f"{path}: must be one of {', '.join(map(str, choices))}; got {value!r}"

    def wrong_length(self, where: str, path: str, expected: int, got: int) -> str:
        return f"{path}: expected {expected} entries, got {got}"

    def invalid(self, where: str, path: str, problem: str) -> str:
        return f"{path}: {problem}" if path else problem


_DIALECT = _ManifestDialect()
_KIND_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "a boolean"}


def _kind_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Annotated:
        return _kind_name(args[0])
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_kind_name(a) for a in args if a is not type(None))
    if origin in (tuple, list):
        return "a list"
    if origin in (dict, Mapping) or hint in (dict, Mapping) or hasattr(hint, "__dataclass_fields__"):
        return "an object"
    return _KIND_NAMES.get(hint, str(hint))


def _read(raw: Mapping[str, Any], key: str, hint: Any) -> Any:
    """One top-level field, checked before the rest (the format and the schema version)."""
    if raw.get(key) is None:
        raise ManifestError(_DIALECT.missing("", key, hint))
    return coerce(raw[key], hint, key, "", ManifestError, _DIALECT)


# --------------------------------------------------------------------------- schema
# Read by `svc_runtime.schema.read_dataclass` from the field types above; `schema_check` holds
# the rules across fields.


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: `shape` holds ints (fixed) and axis names (dynamic)."""

    name: str
    dtype: Dtype
    shape: tuple[Axis, ...]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}


@dataclass(frozen=True)
class ParityRecord:
    """Max abs error (and, for reduced-precision copies, the SNR) of one graph output against its reference,
    measured at export."""

    output: str
    length: PositiveInt  # the dynamic length the check ran at (frames or samples)
    max_abs_error: float
    tolerance: float
    reference: str  # "torch" or the name of the graph it was compared with
    snr_db: float | None = None  # reduced-precision copies: SNR of the output against the fp32 graph's


@dataclass(frozen=True)
class GraphEntry:
    """One ONNX graph file of the bundle.

    data_file / data_sha256 (optional, together): the graph's ONNX external data file beside it,
    which holds its weights when the graph would pass protobuf's 2 GiB limit (a Whisper large
    encoder); hosts open the graph by path so ONNX Runtime finds it. Absent for a self-contained graph.
    """

    role: GraphRole
    file: FileName
    sha256: Sha256
    precision: Precision
    opset: PositiveInt
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    parity: tuple[ParityRecord, ...] = ()
    data_file: FileName | None = None
    data_sha256: Sha256 | None = None

    def schema_check(self) -> None:
        if not self.outputs:
            raise Invalid("outputs", "a graph needs at least one output")
        names = [t.name for t in self.inputs + self.outputs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise Invalid("", f"duplicate tensor names {duplicates}")
        if (self.data_file is None) != (self.data_sha256 is None):
            raise Invalid("", "data_file and data_sha256 go together (the graph's external data file)")
        if self.data_file == self.file:
            raise Invalid("data_file", f"names the graph file itself ({self.file!r})")

    def input(self, name: str) -> TensorSpec:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        raise KeyError(f"graph {self.file} has no input {name!r}; inputs: {[s.name for s in self.inputs]}")

    def input_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.inputs)


@dataclass(frozen=True)
class ShapeRange:
    """A TensorRT optimisation-profile range for one input."""

    min: tuple[PositiveInt, ...]
    opt: tuple[PositiveInt, ...]
    max: tuple[PositiveInt, ...]

    def schema_check(self) -> None:
        if not len(self.min) == len(self.opt) == len(self.max):
            raise Invalid("", "min/opt/max must have the same rank")
        if not all(a <= b <= c for a, b, c in zip(self.min, self.opt, self.max)):
            dims = {"min": self.min, "opt": self.opt, "max": self.max}
            raise Invalid("", f"needs min <= opt <= max on every axis, got {dims}")


@dataclass(frozen=True)
class EngineEntry:
    """A serialised TensorRT engine built from one graph, valid only for its GPU and TensorRT version."""

    graph: str
    file: FileName
    sha256: Sha256
    precision: Precision
    tensorrt_version: str
    gpu: str
    compute_capability: str
    profile: dict[str, ShapeRange]


@dataclass(frozen=True)
class ModelInfo:
    """The generator's constants a host needs to prepare inputs."""

    sampling_rate: PositiveInt
    hop_length: PositiveInt
    ssl_dim: PositiveInt
    inter_channels: PositiveInt
    gin_channels: PositiveInt
    n_harmonics: PositiveInt
    nsf_source_sampling_rate: PositiveInt
    n_speakers: PositiveInt
    speakers: dict[str, int]
    vol_embedding: bool
    use_automatic_f0_prediction: bool
    unit_interpolate_mode: UnitInterpolateMode
    speech_encoder: str

    def schema_check(self) -> None:
        for name, sid in self.speakers.items():
            if not 0 <= sid < self.n_speakers:
                raise Invalid(f"speakers.{name}", f"id must be an integer in [0, {self.n_speakers}), got {sid!r}")


@dataclass(frozen=True)
class SpeechEncoderInfo:
    """The content encoder the model was trained with; `graph` names its graph when the bundle has one."""

    name: str
    sampling_rate: PositiveInt
    hop_length: PositiveInt
    dim: PositiveInt
    graph: str | None = None


@dataclass(frozen=True)
class PitchInfo:
    """The F0 method, its frame grid (`sampling_rate`, `hop_length`) and how to decode its salience.

    threshold: voicing threshold on the salience maximum. f0_min / f0_max: Hz kept after
    decoding (lower: unvoiced, higher: clamped; so-vits-svc's 50..1100). decoder: the salience
    decoder (FCPE: "local_argmax" or "argmax"; None = the method's only one). bins_f0_min /
    bins_f0_max: the Hz range the salience bins span when the checkpoint defines it (FCPE).
    """

    method: str
    sampling_rate: PositiveInt
    hop_length: PositiveInt
    threshold: float
    f0_min: float
    f0_max: float
    graph: str | None = None
    decoder: str | None = None
    bins_f0_min: float | None = None
    bins_f0_max: float | None = None

    def schema_check(self) -> None:
        if not 0 <= self.f0_min < self.f0_max:
            raise Invalid("", f"needs 0 <= f0_min < f0_max, got {self.f0_min}, {self.f0_max}")


@dataclass(frozen=True)
class AuxFile:
    """A retrieval index or cluster-centre file copied into the bundle."""

    kind: AuxKind
    file: FileName
    sha256: Sha256
    format: str
    speaker: str | None = None


@dataclass(frozen=True)
class Manifest:
    """The whole `manifest.json`.

    diffusion: the shallow-diffusion section as written (kept verbatim, written back unchanged),
    checked at load against `svc_runtime.diffusion.spec` (`diffusion_spec` gives it typed).
    """

    graphs: dict[str, GraphEntry]  # read first: a bare manifest names its missing graphs first
    model: ModelInfo
    speech_encoder: SpeechEncoderInfo
    pitch: PitchInfo | None = None
    engines: dict[str, EngineEntry] = field(default_factory=dict)
    aux_files: tuple[AuxFile, ...] = ()
    exporter: dict[str, str] = field(default_factory=dict)
    diffusion: dict[str, Any] | None = None
    schema_version: int = SCHEMA_VERSION
    format: str = FORMAT

    # ----------------------------------------------------------------- parse / emit

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Manifest":
        _check_format_and_version(data)
        raw = dict(data)
        if isinstance(raw.get("exporter"), Mapping):  # informational: any value is kept, as text
            raw["exporter"] = {k: str(v) for k, v in raw["exporter"].items()}
        return read_dataclass(cls, raw, "", error=ManifestError, dialect=_DIALECT)

    def schema_check(self) -> None:
        """The references between sections, and the diffusion section against its own schema."""
        self._check_references()
        self.diffusion_spec()

    def diffusion_spec(self):
        """The `diffusion` section typed: `DiffusionSpec`, `VocoderOnlySpec` (vocoder alone) or None.

        Raises ManifestError naming the field when the section does not fit its schema.
        """
        if self.diffusion is None:
            return None
        from svc_runtime.diffusion.spec import read_section  # the diffusion package only when a bundle has one

        return read_section(self.diffusion, "", "diffusion", ManifestError, _DIALECT)

    def _check_references(self) -> None:
        if not any(g.role == "generator" for g in self.graphs.values()):
            raise Invalid("graphs", "the bundle has no graph with role 'generator'")
        for owner, name, role in (
            ("speech_encoder.graph", self.speech_encoder.graph, "speech_encoder"),
            ("pitch.graph", self.pitch.graph if self.pitch else None, "pitch"),
        ):
            if name is not None:
                if name not in self.graphs:
                    raise Invalid(owner, f"names graph {name!r}, which is not in graphs")
                if self.graphs[name].role != role:
                    raise Invalid(owner, f"graph {name!r} has role {self.graphs[name].role!r}, not {role!r}")
        for name, engine in self.engines.items():
            if engine.graph not in self.graphs:
                raise Invalid(f"engines.{name}.graph", f"names graph {engine.graph!r}, which is not in graphs")
        files = [g.file for g in self.graphs.values()] + [e.file for e in self.engines.values()]
        files += [g.data_file for g in self.graphs.values() if g.data_file is not None]
        files += [a.file for a in self.aux_files]
        duplicates = sorted({f for f in files if files.count(f) > 1})
        if duplicates:
            raise Invalid("", f"two entries name the same file: {duplicates}")

    def to_dict(self) -> dict[str, Any]:
        def clean(value: Any) -> Any:
            if isinstance(value, dict):
                return {k: clean(v) for k, v in value.items() if v is not None}
            if isinstance(value, (list, tuple)):
                return [clean(v) for v in value]
            return value

        data = {
            "format": self.format,
            "schema_version": self.schema_version,
            "exporter": dict(self.exporter),
            "model": asdict(self.model),
            "speech_encoder": asdict(self.speech_encoder),
            "pitch": asdict(self.pitch) if self.pitch else None,
            "graphs": {name: asdict(g) for name, g in self.graphs.items()},
            "engines": {name: asdict(e) for name, e in self.engines.items()},
            "aux_files": [asdict(a) for a in self.aux_files],
        }
        data = clean(data)
        if self.diffusion is not None:
            data["diffusion"] = self.diffusion  # verbatim, as read (None values included)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    @classmethod
    def read(cls, bundle_dir: str | Path) -> "Manifest":
        path = Path(bundle_dir) / MANIFEST_NAME
        if not path.is_file():
            raise ManifestError(f"{path}: not found; a bundle folder holds a manifest.json written by svc-export")
        data = load_json_object(path, ManifestError)  # an object, not too deep, else ManifestError
        try:
            return cls.from_dict(data)
        except ManifestError as exc:
            raise ManifestError(f"{path}: {exc}") from exc

    def write(self, bundle_dir: str | Path) -> Path:
        path = Path(bundle_dir) / MANIFEST_NAME
        path.write_text(self.to_json(), encoding="utf-8")
        return path

    # ----------------------------------------------------------------- queries

    def graph_for(self, role: str, precision: str = "fp32") -> tuple[str, GraphEntry] | None:
        """The graph of `role` at `precision`, falling back to fp32; None when the bundle has none."""
        candidates = [(n, g) for n, g in self.graphs.items() if g.role == role]
        for wanted in (precision, "fp32"):
            for name, graph in candidates:
                if graph.precision == wanted:
                    return name, graph
        return candidates[0] if candidates else None

    def files(self) -> list[tuple[str, str, str]]:
        """(what, file, sha256) for every file the manifest lists."""
        out = [(f"graph {n}", g.file, g.sha256) for n, g in self.graphs.items()]
        out += [(f"graph {n}'s external data", g.data_file, g.data_sha256)
                for n, g in self.graphs.items() if g.data_file is not None]
        out += [(f"engine {n}", e.file, e.sha256) for n, e in self.engines.items()]
        out += [(f"{a.kind} file", a.file, a.sha256) for a in self.aux_files]
        return out


def _check_format_and_version(data: Mapping[str, Any]) -> None:
    """Refuse another format, and schema versions this runtime does not read, before reading the rest."""
    fmt = _read(data, "format", str)
    if fmt != FORMAT:
        raise ManifestError(f"format: expected {FORMAT!r}, got {fmt!r} (not an svc bundle manifest)")
    version = _read(data, "schema_version", int)
    if version == 1:
        raise ManifestError(
            "schema_version: this is a version 1 bundle, made before the conversion graph; re-export it "
            "from its checkpoint with this svc-export (svc-export G_*.pth --config config.json -o BUNDLE ...)"
        )
    if version != SCHEMA_VERSION:
        raise ManifestError(
            f"schema_version: this runtime reads version {SCHEMA_VERSION}, the bundle has {version}; "
            "re-export the bundle with a matching svc-export"
        )
