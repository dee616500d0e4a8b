"""Retrieval indexes and cluster centres for the bundle, one file per speaker.

The runtime reads a faiss index file (`faiss.read_index`) and a centres array
[K, ssl_dim] (`.npy`, or `.npz` key `centers`) per speaker. so-vits-svc 4.1 keeps
all speakers in one pickle instead (`feature_and_index.pkl`: speaker -> faiss index;
`kmeans_10000.pt`: speaker -> {"cluster_centers_": array, ...}); those are split
here without running code from them: the index pickle is read with an allow-list
unpickler that records faiss objects as inert data (their pickled state is the
serialised index), the k-means file with `svc_train.safe_pickle`.

Command-line form: `--index FILE` (so-vits-svc's pickle), `--index FOLDER` (written by
`svc-train index`: `index.json` + `<speaker>.index`), `--index SPEAKER=FILE` (one
speaker's faiss file); `--cluster FILE.pt` or `--cluster SPEAKER=FILE.npy`. Everything is read and checked before any graph is exported.
"""

from __future__ import annotations

import io
import json
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from svc_train.safe_pickle import PickledObject, SafeUnpickler, UnsafePickleError, load_checkpoint


class AuxFileError(ValueError):
    """An --index / --cluster file that cannot be used (named, with the reason)."""


@dataclass(frozen=True)
class AuxPayload:
    """One file to write into the bundle."""

    kind: str  # "index" | "cluster"
    speaker: str
    name: str
    format: str  # "faiss" | "npy" | "npz"
    data: bytes | None = None  # bytes to write, or
    source: Path | None = None  # a file to copy


def split_argument(text: str, speakers: dict[str, int]) -> tuple[str | None, Path]:
    """`SPEAKER=FILE` or `FILE` -> (speaker or None, path); a file name containing '=' still works."""
    if "=" in text and not Path(text).exists():
        speaker, path = text.split("=", 1)
        if speaker not in speakers:
            raise AuxFileError(f"{text}: unknown speaker {speaker!r}; the model has {sorted(speakers)}")
        return speaker, Path(path)
    return None, Path(text)


def argument_path(text: str) -> Path:
    """The file an --index/--cluster argument names (for existence checks before the config is read)."""
    if "=" in text and not Path(text).exists():
        return Path(text.split("=", 1)[1])
    return Path(text)


class _FaissRecordingUnpickler(SafeUnpickler):
    """`SafeUnpickler` that also records faiss index objects as inert `PickledObject`s."""

    def find_class(self, module: str, name: str) -> Any:
        if module.split(".")[0] == "faiss":
            key = (module, name)
            if key not in self._stubs:
                self._stubs[key] = type(f"Pickled_{name}", (PickledObject,), {"qualname": f"{module}.{name}"})
            return self._stubs[key]
        return super().find_class(module, name)


def _file_name(kind: str, speaker: str, sid: int, suffix: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", speaker)
    return f"{kind}_{sid}_{safe}{suffix}"


def _check_faiss(data: bytes, where: str, dim: int) -> None:
    """With faiss installed, deserialise the index and check its dimension."""
    try:
        import faiss
    except ImportError:
        return
    try:
        index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
    except RuntimeError as exc:
        raise AuxFileError(f"{where}: not a faiss index ({str(exc).splitlines()[0]})") from None
    if index.d != dim:
        raise AuxFileError(f"{where}: index vectors have {index.d} dimensions, the model's units {dim}")


def _check_centres(centres: Any, where: str, dim: int) -> np.ndarray:
    array = np.asarray(centres)
    if array.ndim != 2 or array.shape[1] != dim or not np.issubdtype(array.dtype, np.floating):
        raise AuxFileError(f"{where}: cluster centres must be a float [K, {dim}] array, got {array.dtype} {list(array.shape)}")
    return array.astype(np.float32)


def _index_folder_payloads(path: Path, speakers: dict[str, int], dim: int) -> list[AuxPayload]:
    """A folder written by `svc-train index`: `index.json` listing `<speaker>.index` files."""
    listing = path / "index.json"
    try:
        data = json.loads(listing.read_text(encoding="utf-8"))
        entries = [(e["speaker"], path / e["file"]) for e in data["speakers"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AuxFileError(f"--index {path}: not an svc-train index folder (index.json: {exc})") from None
    payloads = []
    for name, file in entries:
        if name not in speakers:
            raise AuxFileError(f"--index {listing}: speaker {name!r} is not one of the model's {sorted(speakers)}")
        if not file.is_file() or file.parent != path:
            raise AuxFileError(f"--index {listing}: {file.name} for speaker {name!r} is missing")
        _check_faiss(file.read_bytes(), f"--index {file}", dim)
        payloads.append(AuxPayload("index", name, _file_name("index", name, speakers[name], ".index"), "faiss",
                                   source=file))
    return payloads


def _index_payloads(speaker: str | None, path: Path, speakers: dict[str, int], dim: int) -> list[AuxPayload]:
    if path.is_dir() and speaker is None:
        return _index_folder_payloads(path, speakers, dim)
    if path.suffix == ".pkl":  # so-vits-svc's feature_and_index.pkl
        try:
            with path.open("rb") as handle:
                table = _FaissRecordingUnpickler(handle).load()
        except (UnsafePickleError, pickle.UnpicklingError, EOFError) as exc:
            raise AuxFileError(f"--index {path}: not a so-vits-svc feature_and_index.pkl ({exc})") from None
        if not isinstance(table, dict):
            raise AuxFileError(f"--index {path}: expected a mapping speaker -> faiss index")
        payloads = []
        for name, record in table.items():
            state = getattr(record, "state", None)
            if name not in speakers:
                raise AuxFileError(f"--index {path}: speaker {name!r} is not one of the model's {sorted(speakers)}")
            if not isinstance(record, PickledObject) or not isinstance(state, dict) or not isinstance(
                state.get("this"), (bytes, bytearray)
            ):
                raise AuxFileError(f"--index {path}: entry {name!r} is not a pickled faiss index")
            data = bytes(state["this"])
            _check_faiss(data, f"--index {path} [{name}]", dim)
            payloads.append(AuxPayload("index", name, _file_name("index", name, speakers[name], ".index"), "faiss",
                                       data=data))
        return payloads
    speaker = _single_speaker(speaker, path, "--index", speakers)
    _check_faiss(path.read_bytes(), f"--index {path}", dim)
    return [AuxPayload("index", speaker, _file_name("index", speaker, speakers[speaker], ".index"), "faiss",
                       source=path)]


def _cluster_payloads(speaker: str | None, path: Path, speakers: dict[str, int], dim: int) -> list[AuxPayload]:
    if path.suffix in (".pt", ".pth"):  # so-vits-svc's kmeans_10000.pt
        try:
            table = load_checkpoint(path)
        except (UnsafePickleError, pickle.UnpicklingError, RuntimeError) as exc:
            raise AuxFileError(f"--cluster {path}: cannot read it safely ({exc})") from None
        if not isinstance(table, dict):
            raise AuxFileError(f"--cluster {path}: expected a mapping speaker -> k-means model")
        payloads = []
        for name, model in table.items():
            if name not in speakers:
                raise AuxFileError(f"--cluster {path}: speaker {name!r} is not one of the model's {sorted(speakers)}")
            if not isinstance(model, dict) or "cluster_centers_" not in model:
                raise AuxFileError(f"--cluster {path}: entry {name!r} has no cluster_centers_")
            centres = _check_centres(model["cluster_centers_"], f"--cluster {path} [{name}]", dim)
            buffer = io.BytesIO()
            np.save(buffer, centres, allow_pickle=False)
            payloads.append(AuxPayload("cluster", name, _file_name("cluster", name, speakers[name], ".npy"), "npy",
                                       data=buffer.getvalue()))
        return payloads
    speaker = _single_speaker(speaker, path, "--cluster", speakers)
    if path.suffix not in (".npy", ".npz"):
        raise AuxFileError(f"--cluster {path}: expected so-vits-svc's kmeans .pt, or centres as .npy / .npz")
    try:
        loaded = np.load(path, allow_pickle=False)
        centres = loaded["centers"] if path.suffix == ".npz" else loaded
    except (ValueError, KeyError, OSError) as exc:
        raise AuxFileError(f"--cluster {path}: cannot read centres ({exc})") from None
    _check_centres(centres, f"--cluster {path}", dim)
    fmt = path.suffix.lstrip(".")
    return [AuxPayload("cluster", speaker, _file_name("cluster", speaker, speakers[speaker], path.suffix), fmt,
                       source=path)]


def _single_speaker(speaker: str | None, path: Path, option: str, speakers: dict[str, int]) -> str:
    if speaker is not None:
        return speaker
    if len(speakers) == 1:
        return next(iter(speakers))
    raise AuxFileError(f"{option} {path}: say whose file it is with {option} SPEAKER={path} "
                       f"(the model has {sorted(speakers)})")


def prepare_aux_files(
    index: tuple[str, ...], cluster: tuple[str, ...], speakers: dict[str, int], dim: int
) -> list[AuxPayload]:
    """Read and check every --index / --cluster argument; the per-speaker files to write."""
    payloads: list[AuxPayload] = []
    for kind, arguments in (("index", index), ("cluster", cluster)):
        for text in arguments:
            speaker, path = split_argument(text, speakers)
            reader = _index_payloads if kind == "index" else _cluster_payloads
            payloads += reader(speaker, path, speakers, dim)
    seen: dict[tuple[str, str], str] = {}
    for p in payloads:
        key = (p.kind, p.speaker)
        if key in seen:
            raise AuxFileError(f"two {p.kind} files for speaker {p.speaker!r}; give one")
        seen[key] = p.name
    return payloads
