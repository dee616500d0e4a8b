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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

from svc_runtime.bundle.validate import load_json_object
from svc_runtime.errors import BundleError
from svc_runtime.vocabulary import UNIT_INTERPOLATE_MODES

FORMAT = "svc-bundle"
SCHEMA_VERSION = 3
"""3: the conversion graphs carry the NSF phase as int32 limbs [B, 3, H] (2 had int64 [B, H], which OpenVINO
and TensorRT compute in 32 bits); 2: the conversion graphs (roles converter, converter_f0, synthesis); 1 had none."""
MANIFEST_NAME = "manifest.json"

DTYPES = ("float32", "float16", "int64", "int32", "bool")
PRECISIONS = ("fp32", "fp16", "int8")
"""int8: CPU-only graphs (svc-export --int8) with fp32 inputs and outputs."""
GRAPH_ROLES = (
    "converter", "converter_f0", "synthesis", "generator", "f0_predictor", "speech_encoder", "pitch",
    "diffusion_condition", "diffusion_denoiser", "vocoder",
)
"""The shallow-diffusion roles' graphs are described by the manifest's `diffusion` section
(`svc_runtime.diffusion.spec.DiffusionSpec`), which the diffusion runtime validates."""
AUX_KINDS = ("index", "cluster", "diffusion")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_AXIS_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ManifestError(BundleError):
    """`manifest.json` is missing, malformed or does not match the schema."""


# --------------------------------------------------------------------------- helpers


class _Reader:
    """Typed access to one JSON object with error messages that name the field path."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise ManifestError(f"{where}: expected a JSON object, got {type(data).__name__}")
        self.data = data
        self.where = where

    def _path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def has(self, key: str) -> bool:
        return key in self.data and self.data[key] is not None

    def get(self, key: str, kind: type | tuple[type, ...], *, optional: bool = False, default: Any = None) -> Any:
        if key not in self.data or self.data[key] is None:
            if optional:
                return default
            raise ManifestError(f"{self._path(key)}: required field is missing")
        value = self.data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # bool is an int in Python; do not accept true/false where a number is meant.
        if isinstance(value, bool) and bool not in kinds:
            raise ManifestError(f"{self._path(key)}: expected {_kind_name(kinds)}, got a boolean")
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kinds):
            raise ManifestError(f"{self._path(key)}: expected {_kind_name(kinds)}, got {type(value).__name__}")
        return value

    def positive_int(self, key: str, *, optional: bool = False) -> int | None:
        value = self.get(key, int, optional=optional)
        if value is not None and value <= 0:
            raise ManifestError(f"{self._path(key)}: must be a positive integer, got {value}")
        return value

    def choice(self, key: str, choices: tuple[str, ...], *, optional: bool = False) -> str | None:
        value = self.get(key, str, optional=optional)
        if value is not None and value not in choices:
            raise ManifestError(f"{self._path(key)}: must be one of {', '.join(choices)}; got {value!r}")
        return value

    def sha256(self, key: str) -> str:
        value = self.get(key, str)
        if not _SHA256.match(value):
            raise ManifestError(f"{self._path(key)}: expected 64 lower-case hex digits, got {value!r}")
        return value

    def file_name(self, key: str) -> str:
        value = self.get(key, str)
        if not value or "/" in value or "\\" in value or value in (".", "..") or value == MANIFEST_NAME:
            raise ManifestError(f"{self._path(key)}: must be a plain file name inside the bundle, got {value!r}")
        return value

    def child(self, key: str) -> "_Reader":
        return _Reader(self.get(key, dict), self._path(key))

    def items(self, key: str, *, optional: bool = False) -> list[tuple[str, "_Reader"]]:
        mapping = self.get(key, dict, optional=optional, default={})
        return [(name, _Reader(value, f"{self._path(key)}.{name}")) for name, value in mapping.items()]

    def list_of(self, key: str, *, optional: bool = False) -> list["_Reader"]:
        values = self.get(key, list, optional=optional, default=[])
        return [_Reader(value, f"{self._path(key)}[{i}]") for i, value in enumerate(values)]


def _kind_name(kinds: tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "a boolean", dict: "an object", list: "a list"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


# --------------------------------------------------------------------------- schema


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: `shape` holds ints (fixed) and axis names (dynamic)."""

    name: str
    dtype: str
    shape: tuple[int | str, ...]

    @classmethod
    def parse(cls, r: _Reader) -> "TensorSpec":
        name = r.get("name", str)
        dtype = r.choice("dtype", DTYPES)
        shape = []
        for i, dim in enumerate(r.get("shape", list)):
            ok_int = isinstance(dim, int) and not isinstance(dim, bool) and dim > 0
            ok_name = isinstance(dim, str) and _AXIS_NAME.match(dim) is not None
            if not (ok_int or ok_name):
                raise ManifestError(f"{r.where}.shape[{i}]: expected a positive integer or an axis name, got {dim!r}")
            shape.append(dim)
        return cls(name=name, dtype=dtype, shape=tuple(shape))

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}


@dataclass(frozen=True)
class ParityRecord:
    """Max abs error of one graph output against its reference, measured at export."""

    output: str
    length: int  # the dynamic length the check ran at (frames or samples)
    max_abs_error: float
    tolerance: float
    reference: str  # "torch" or the name of the graph it was compared with

    @classmethod
    def parse(cls, r: _Reader) -> "ParityRecord":
        return cls(
            output=r.get("output", str),
            length=r.positive_int("length"),
            max_abs_error=r.get("max_abs_error", float),
            tolerance=r.get("tolerance", float),
            reference=r.get("reference", str),
        )


@dataclass(frozen=True)
class GraphEntry:
    """One ONNX graph file of the bundle.

    data_file / data_sha256 (optional, together): the graph's ONNX external data file beside it,
    which holds its weights when the graph would pass protobuf's 2 GiB limit (a Whisper large
    encoder); hosts open the graph by path so ONNX Runtime finds it. Absent for a self-contained graph.
    """

    role: str
    file: str
    sha256: str
    precision: str
    opset: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    parity: tuple[ParityRecord, ...] = ()
    data_file: str | None = None
    data_sha256: str | None = None

    @classmethod
    def parse(cls, r: _Reader) -> "GraphEntry":
        inputs = tuple(TensorSpec.parse(x) for x in r.list_of("inputs"))
        outputs = tuple(TensorSpec.parse(x) for x in r.list_of("outputs"))
        if not outputs:
            raise ManifestError(f"{r.where}.outputs: a graph needs at least one output")
        names = [t.name for t in inputs + outputs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ManifestError(f"{r.where}: duplicate tensor names {duplicates}")
        if r.has("data_file") != r.has("data_sha256"):
            raise ManifestError(f"{r.where}: data_file and data_sha256 go together (the graph's external data file)")
        data_file = r.file_name("data_file") if r.has("data_file") else None
        file = r.file_name("file")
        if data_file == file:
            raise ManifestError(f"{r.where}.data_file: names the graph file itself ({file!r})")
        return cls(
            role=r.choice("role", GRAPH_ROLES),
            file=file,
            sha256=r.sha256("sha256"),
            precision=r.choice("precision", PRECISIONS),
            opset=r.positive_int("opset"),
            inputs=inputs,
            outputs=outputs,
            parity=tuple(ParityRecord.parse(x) for x in r.list_of("parity", optional=True)),
            data_file=data_file,
            data_sha256=r.sha256("data_sha256") if data_file is not None else None,
        )

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

    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    @classmethod
    def parse(cls, r: _Reader) -> "ShapeRange":
        dims = {}
        for key in ("min", "opt", "max"):
            values = r.get(key, list)
            if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
                raise ManifestError(f"{r.where}.{key}: expected positive integers, got {values!r}")
            dims[key] = tuple(values)
        if not len(dims["min"]) == len(dims["opt"]) == len(dims["max"]):
            raise ManifestError(f"{r.where}: min/opt/max must have the same rank")
        if not all(a <= b <= c for a, b, c in zip(dims["min"], dims["opt"], dims["max"])):
            raise ManifestError(f"{r.where}: needs min <= opt <= max on every axis, got {dims}")
        return cls(**dims)


@dataclass(frozen=True)
class EngineEntry:
    """A serialised TensorRT engine built from one graph, valid only for its GPU and TensorRT version."""

    graph: str
    file: str
    sha256: str
    precision: str
    tensorrt_version: str
    gpu: str
    compute_capability: str
    profile: dict[str, ShapeRange]

    @classmethod
    def parse(cls, r: _Reader) -> "EngineEntry":
        return cls(
            graph=r.get("graph", str),
            file=r.file_name("file"),
            sha256=r.sha256("sha256"),
            precision=r.choice("precision", PRECISIONS),
            tensorrt_version=r.get("tensorrt_version", str),
            gpu=r.get("gpu", str),
            compute_capability=r.get("compute_capability", str),
            profile={name: ShapeRange.parse(x) for name, x in r.items("profile")},
        )


@dataclass(frozen=True)
class ModelInfo:
    """The generator's constants a host needs to prepare inputs."""

    sampling_rate: int
    hop_length: int
    ssl_dim: int
    inter_channels: int
    gin_channels: int
    n_harmonics: int
    nsf_source_sampling_rate: int
    n_speakers: int
    speakers: dict[str, int]
    vol_embedding: bool
    use_automatic_f0_prediction: bool
    unit_interpolate_mode: str
    speech_encoder: str

    @classmethod
    def parse(cls, r: _Reader) -> "ModelInfo":
        info = cls(
            sampling_rate=r.positive_int("sampling_rate"),
            hop_length=r.positive_int("hop_length"),
            ssl_dim=r.positive_int("ssl_dim"),
            inter_channels=r.positive_int("inter_channels"),
            gin_channels=r.positive_int("gin_channels"),
            n_harmonics=r.positive_int("n_harmonics"),
            nsf_source_sampling_rate=r.positive_int("nsf_source_sampling_rate"),
            n_speakers=r.positive_int("n_speakers"),
            speakers=dict(r.get("speakers", dict)),
            vol_embedding=r.get("vol_embedding", bool),
            use_automatic_f0_prediction=r.get("use_automatic_f0_prediction", bool),
            unit_interpolate_mode=r.choice("unit_interpolate_mode", UNIT_INTERPOLATE_MODES),
            speech_encoder=r.get("speech_encoder", str),
        )
        for name, sid in info.speakers.items():
            if not isinstance(sid, int) or isinstance(sid, bool) or not 0 <= sid < info.n_speakers:
                raise ManifestError(
                    f"{r.where}.speakers.{name}: id must be an integer in [0, {info.n_speakers}), got {sid!r}"
                )
        return info


@dataclass(frozen=True)
class SpeechEncoderInfo:
    """The content encoder the model was trained with; `graph` names its graph when the bundle has one."""

    name: str
    sampling_rate: int
    hop_length: int
    dim: int
    graph: str | None = None

    @classmethod
    def parse(cls, r: _Reader) -> "SpeechEncoderInfo":
        return cls(
            name=r.get("name", str),
            sampling_rate=r.positive_int("sampling_rate"),
            hop_length=r.positive_int("hop_length"),
            dim=r.positive_int("dim"),
            graph=r.get("graph", str, optional=True),
        )


@dataclass(frozen=True)
class PitchInfo:
    """The F0 method, its frame grid (`sampling_rate`, `hop_length`) and how to decode its salience.

    threshold: voicing threshold on the salience maximum. f0_min / f0_max: Hz kept after
    decoding (lower: unvoiced, higher: clamped; so-vits-svc's 50..1100). decoder: the salience
    decoder (FCPE: "local_argmax" or "argmax"; None = the method's only one). bins_f0_min /
    bins_f0_max: the Hz range the salience bins span when the checkpoint defines it (FCPE).
    """

    method: str
    sampling_rate: int
    hop_length: int
    threshold: float
    f0_min: float
    f0_max: float
    graph: str | None = None
    decoder: str | None = None
    bins_f0_min: float | None = None
    bins_f0_max: float | None = None

    @classmethod
    def parse(cls, r: _Reader) -> "PitchInfo":
        info = cls(
            method=r.get("method", str),
            sampling_rate=r.positive_int("sampling_rate"),
            hop_length=r.positive_int("hop_length"),
            threshold=r.get("threshold", float),
            f0_min=r.get("f0_min", float),
            f0_max=r.get("f0_max", float),
            graph=r.get("graph", str, optional=True),
            decoder=r.get("decoder", str, optional=True),
            bins_f0_min=r.get("bins_f0_min", float, optional=True),
            bins_f0_max=r.get("bins_f0_max", float, optional=True),
        )
        if not 0 <= info.f0_min < info.f0_max:
            raise ManifestError(f"{r.where}: needs 0 <= f0_min < f0_max, got {info.f0_min}, {info.f0_max}")
        return info


@dataclass(frozen=True)
class AuxFile:
    """A retrieval index or cluster-centre file copied into the bundle."""

    kind: str
    file: str
    sha256: str
    format: str
    speaker: str | None = None

    @classmethod
    def parse(cls, r: _Reader) -> "AuxFile":
        return cls(
            kind=r.choice("kind", AUX_KINDS),
            file=r.file_name("file"),
            sha256=r.sha256("sha256"),
            format=r.get("format", str),
            speaker=r.get("speaker", str, optional=True),
        )


@dataclass(frozen=True)
class Manifest:
    """The whole `manifest.json`."""

    model: ModelInfo
    graphs: dict[str, GraphEntry]
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
        r = _Reader(dict(data), "")
        fmt = r.get("format", str)
        if fmt != FORMAT:
            raise ManifestError(f"format: expected {FORMAT!r}, got {fmt!r} (not an svc bundle manifest)")
        version = r.get("schema_version", int)
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
        graphs = {name: GraphEntry.parse(g) for name, g in r.items("graphs")}
        manifest = cls(
            model=ModelInfo.parse(r.child("model")),
            graphs=graphs,
            speech_encoder=SpeechEncoderInfo.parse(r.child("speech_encoder")),
            pitch=PitchInfo.parse(r.child("pitch")) if r.has("pitch") else None,
            engines={name: EngineEntry.parse(e) for name, e in r.items("engines", optional=True)},
            aux_files=tuple(AuxFile.parse(x) for x in r.list_of("aux_files", optional=True)),
            exporter={k: str(v) for k, v in r.get("exporter", dict, optional=True, default={}).items()},
            diffusion=r.get("diffusion", dict, optional=True),
            schema_version=version,
            format=fmt,
        )
        manifest._check_references()
        return manifest

    def _check_references(self) -> None:
        if not any(g.role == "generator" for g in self.graphs.values()):
            raise ManifestError("graphs: the bundle has no graph with role 'generator'")
        for owner, name, role in (
            ("speech_encoder.graph", self.speech_encoder.graph, "speech_encoder"),
            ("pitch.graph", self.pitch.graph if self.pitch else None, "pitch"),
        ):
            if name is not None:
                if name not in self.graphs:
                    raise ManifestError(f"{owner}: names graph {name!r}, which is not in graphs")
                if self.graphs[name].role != role:
                    raise ManifestError(f"{owner}: graph {name!r} has role {self.graphs[name].role!r}, not {role!r}")
        for name, engine in self.engines.items():
            if engine.graph not in self.graphs:
                raise ManifestError(f"engines.{name}.graph: names graph {engine.graph!r}, which is not in graphs")
        files = [g.file for g in self.graphs.values()] + [e.file for e in self.engines.values()]
        files += [g.data_file for g in self.graphs.values() if g.data_file is not None]
        files += [a.file for a in self.aux_files]
        duplicates = sorted({f for f in files if files.count(f) > 1})
        if duplicates:
            raise ManifestError(f"two entries name the same file: {duplicates}")

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
            data["diffusion"] = self.diffusion  # verbatim: its schema belongs to svc_runtime.diffusion.spec
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
