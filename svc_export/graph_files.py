"""Graph files on disk: saving a model as one file or with its weights in one external data file,
copying and replacing graphs with their data, and replacing a graph by a rewritten model only
when the rewrite passes the ONNX checker.

A serialised ONNX model cannot pass protobuf's 2 GiB limit, so a larger graph (Whisper large-v2's
encoder is ~2.5 GB in fp32) keeps its weights in ``<graph file>.data`` beside it (ONNX external
data, every tensor in that one file). ``onnx.load(path)`` reads the weights back into memory, ONNX
Runtime and TensorRT find the data file when they open the graph by path, and the bundle's
manifest records the data file and its sha256 with the graph (`GraphEntry.data_file`).

Every pass that rewrites a graph keeps its layout: a graph saved with external data is saved
again with external data (under the same data file name), a single-file graph stays one file
unless the rewrite grew past the threshold.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

import onnx
from google.protobuf.message import EncodeError
from onnx import external_data_helper

log = logging.getLogger(__name__)

EXTERNAL_DATA_THRESHOLD = (2 << 30) - (64 << 20)
"""Bytes (2 GiB less 64 MiB of headroom for the graph itself) from which a graph keeps its
weights in an external data file; `svc-export --external-data-threshold` lowers it."""
INLINE_TENSOR_BYTES = 1024
"""Tensors smaller than this stay inside the graph file (shapes, scalars, small constants)."""
DATA_SUFFIX = ".data"


def data_file_name(path: str | os.PathLike) -> str:
    """The external data file name of graph `path`: ``speech_encoder.onnx`` -> ``speech_encoder.onnx.data``."""
    return Path(path).name + DATA_SUFFIX


def _tensors(model: onnx.ModelProto):
    return external_data_helper._get_all_tensors(model)  # initializers and attribute tensors, subgraphs too


def external_locations(model: onnx.ModelProto) -> set[str]:
    """The external data files a model (loaded with ``load_external_data=False``) refers to."""
    locations = set()
    for tensor in _tensors(model):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            locations |= {entry.value for entry in tensor.external_data if entry.key == "location"}
    return locations


def data_file_of(path: str | os.PathLike) -> Path | None:
    """The external data file graph `path` keeps its weights in; None for a self-contained graph.

    Raises ValueError when the graph refers to several data files or to one outside its folder
    (svc-export writes neither).
    """
    path = Path(path)
    locations = external_locations(onnx.load(str(path), load_external_data=False))
    if not locations:
        return None
    if len(locations) > 1:
        raise ValueError(f"{path.name}: weights spread over {len(locations)} external data files "
                         f"({', '.join(sorted(locations))}); expected one")
    (location,) = locations
    if Path(location).name != location:
        raise ValueError(f"{path.name}: external data location {location!r} is not a file beside the graph")
    return path.parent / location


def graph_files(path: str | os.PathLike) -> list[Path]:
    """The graph file and, when it has one, its external data file."""
    data = data_file_of(path)
    return [Path(path)] + ([data] if data is not None else [])


def model_bytes(model: onnx.ModelProto) -> int:
    """Serialised size of `model` with every tensor inline (what a single-file save would write); past
    2 GiB, where protobuf will not even size it, the tensors' bytes plus 2 GiB."""
    try:
        return model.ByteSize()
    except (EncodeError, ValueError):
        return sum(_tensor_bytes(t) for t in _tensors(model)) + (2 << 30)


def _tensor_bytes(tensor: onnx.TensorProto) -> int:
    if tensor.raw_data:
        return len(tensor.raw_data)
    count = 1
    for dim in tensor.dims:
        count *= dim
    return count * onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize


def save_graph(
    model: onnx.ModelProto, path: str | os.PathLike, *, threshold: int = EXTERNAL_DATA_THRESHOLD,
    external: bool | None = None,
) -> Path | None:
    """Write `model` (every tensor in memory) to `path`; its external data file, or None.

    external: True / False forces the layout; None chooses external data when the model's size
    passes `threshold` bytes. External data goes to ``<path name>.data`` beside `path` (replaced,
    never appended to), every initializer of at least `INLINE_TENSOR_BYTES` in that one file. Constant
    nodes' values stay in the graph file: they are small (a DFT basis, mel filters), moving them would
    change how later passes rewrite the graph, and the runtime reads the initializers' locations only.
    """
    path = Path(path)
    data = path.parent / data_file_name(path)
    if external is None:
        external = model_bytes(model) > threshold
    data.unlink(missing_ok=True)  # onnx appends to an existing data file
    if not external:
        onnx.save_model(model, str(path))
        return None
    onnx.save_model(
        model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location=data.name,
        size_threshold=INLINE_TENSOR_BYTES,
    )
    # onnx.save_model marks the in-memory tensors external; read them back so `model` stays usable
    external_data_helper.load_external_data_for_model(model, str(path.parent))
    if not data.exists():  # every tensor was below INLINE_TENSOR_BYTES
        return None
    os.chmod(data, path.stat().st_mode & 0o777)  # onnx creates it private; a bundle is an ordinary folder
    return data



def check_graph(path: str | os.PathLike) -> None:
    """The ONNX checker with shape inference, by path (works past 2 GiB and with external data)."""
    onnx.checker.check_model(str(path), full_check=True)


def remove_graph(path: str | os.PathLike) -> None:
    """Delete graph `path` and its external data file (when present)."""
    path = Path(path)
    (path.parent / data_file_name(path)).unlink(missing_ok=True)
    path.unlink(missing_ok=True)


def copy_graph(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Copy graph `source` to `target` in the same folder or another; an external data file is copied
    to ``<target name>.data`` and the copy's tensors point at it."""
    source, target = Path(source), Path(target)
    data = data_file_of(source)
    if data is None:
        shutil.copyfile(source, target)
        return
    model = onnx.load(str(source), load_external_data=False)
    target_data = target.parent / data_file_name(target)
    shutil.copyfile(data, target_data)
    for tensor in _tensors(model):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            for entry in tensor.external_data:
                if entry.key == "location":
                    entry.value = target_data.name
    onnx.save_model(model, str(target))


def move_graph(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Move graph `source` over `target` (same folder, same data file name rule); `target`'s old
    data file goes when the new graph has none."""
    source, target = Path(source), Path(target)
    data = data_file_of(source)
    if data is not None and data.name != data_file_name(target):
        copy_graph(source, target)
        remove_graph(source)
        return
    if data is not None and data.parent != target.parent:
        data.replace(target.parent / data.name)
    if data is None:
        (target.parent / data_file_name(target)).unlink(missing_ok=True)
    source.replace(target)


def replace_if_valid(path: Path, model: onnx.ModelProto, suffix: str, failure: str) -> bool:
    """Save `model` beside `path` (in a scratch folder named with `suffix`), full-check it, and move it
    over `path`, keeping `path`'s layout (external data or one file, see `save_graph`).

    An invalid model is deleted and `path` kept; `failure` (formatted with `name` and `error`)
    is logged as a warning. True when `path` now holds `model`.
    """
    path = Path(path)
    external = True if data_file_of(path) is not None else None
    with tempfile.TemporaryDirectory(prefix=f".{path.stem}{suffix}-", dir=path.parent) as scratch:
        candidate = Path(scratch) / path.name  # same names as the target: the data location stays valid
        save_graph(model, candidate, external=external)
        try:
            check_graph(candidate)
        except onnx.checker.ValidationError as exc:
            log.warning(failure.format(name=path.name, error=exc))
            return False
        move_graph(candidate, path)
    return True


def entry_files(path: str | os.PathLike) -> dict[str, str | None]:
    """The file fields of graph `path`'s manifest entry (`GraphEntry`): file, sha256, and data_file /
    data_sha256 of its external data file (None for a self-contained graph)."""
    from svc_runtime.bundle.bundle import sha256_of

    path = Path(path)
    data = data_file_of(path)
    return {
        "file": path.name, "sha256": sha256_of(path),
        "data_file": data.name if data is not None else None,
        "data_sha256": sha256_of(data) if data is not None else None,
    }


def resave_graph(path: str | os.PathLike, *, threshold: int = EXTERNAL_DATA_THRESHOLD) -> Path | None:
    """Save graph `path` again in this module's layout (one file below `threshold` bytes, else every
    initializer in ``<name>.data``), e.g. after a tool that wrote it its own way; its data file or None."""
    path = Path(path)
    old = data_file_of(path)
    model = onnx.load(str(path))
    if old is not None and old.name != data_file_name(path):
        old.unlink()
    return save_graph(model, path, threshold=threshold)


def copy_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """A deep copy of `model` (also past 2 GiB, where a round trip through bytes fails)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    return copy


def infer_shapes(model: onnx.ModelProto) -> onnx.ModelProto:
    """`onnx.shape_inference.infer_shapes`, also for a model past 2 GiB (which it cannot serialise):
    then it runs on a copy whose large tensors' data is left out, which keeps every value's type and
    the shapes that do not depend on weight values (the passes here read types)."""
    if model_bytes(model) <= EXTERNAL_DATA_THRESHOLD:
        return onnx.shape_inference.infer_shapes(model)
    light = copy_model(model)
    for tensor in _tensors(light):
        if len(tensor.raw_data) >= INLINE_TENSOR_BYTES:
            external_data_helper.set_external_data(tensor, location="weights-left-out")
            tensor.ClearField("raw_data")
    return onnx.shape_inference.infer_shapes(light)
