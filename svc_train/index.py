"""Speaker feature stores built from the training units, and checkpoint mixing.

* Retrieval index (so-vits-svc 4.1 ``train_index.py``, after RVC): per speaker, all
  content-unit frames of its clips, shuffled; above ``KMEANS_ABOVE`` frames reduced
  to ``KMEANS_CENTRES`` k-means centres; then a faiss ``IVF{n},Flat`` index with
  ``n = min(16 * sqrt(N), N // 39)`` lists (at least 1) and ``nprobe = 1``.
  Written as one faiss file per speaker (``<speaker>.index``, what the runtime's
  retrieval reads with ``faiss.read_index``) plus ``index.json`` naming them.
* Cluster model (``cluster/train_cluster.py``): per speaker, k-means centres of the
  unit frames. Written as ``<speaker>.centers.npy`` ([K, dim] float32, the runtime's
  cluster file) and as so-vits-svc's ``kmeans_<K>.pt`` (``{speaker: {"n_features_in_",
  "_n_threads", "cluster_centers_"}}``) for so-vits-svc itself.
* Mixing (so-vits-svc's ``mix_model``): a weighted sum of checkpoints with identical
  keys and shapes.

k-means runs on faiss (already a dependency), not scikit-learn.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from svc_train.checkpoint import CheckpointError, read_checkpoint, to_classic_weight_norm_keys
from svc_train.data.config_builder import read_filelist
from svc_train.data.features import load_features

KMEANS_ABOVE = 200_000  # frames; larger sets are reduced to centres before indexing (as so-vits-svc / RVC)
KMEANS_CENTRES = 10_000
INDEX_ADD_BATCH = 8192


def speaker_units(filelists: Sequence[Path], speakers: Sequence[str]) -> dict[str, np.ndarray]:
    """All unit frames per speaker from the feature caches of the listed clips: {speaker: [N, dim] float32}."""
    frames: dict[str, list[np.ndarray]] = {s: [] for s in speakers}
    seen: set[Path] = set()
    for filelist in filelists:
        for wav in read_filelist(filelist):
            if wav in seen:
                continue
            seen.add(wav)
            speaker = wav.parent.name
            if speaker not in frames:
                raise ValueError(f"{wav}: speaker folder {speaker!r} is not in the config's speakers {list(speakers)}")
            features, _ = load_features(wav)
            frames[speaker].append(features.units.T.astype(np.float32))
    missing = [s for s, f in frames.items() if not f]
    if missing:
        raise ValueError(f"no clips with features for speaker(s) {missing}; run `svc-train features` first")
    return {s: np.ascontiguousarray(np.concatenate(f, axis=0)) for s, f in frames.items()}


KMEANS_PP_BUDGET = 2e9  # N * k * dim up to which the k-means++ seeding is affordable in numpy


def kmeans_plus_plus(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding: [k, dim] rows of x [N, dim], each drawn with probability ~ squared distance."""
    centres = np.empty((k, x.shape[1]), dtype=np.float32)
    centres[0] = x[rng.integers(x.shape[0])]
    nearest = np.sum((x - centres[0]) ** 2, axis=1, dtype=np.float64)
    for i in range(1, k):
        total = nearest.sum()
        pick = rng.choice(x.shape[0], p=nearest / total) if total > 0 else rng.integers(x.shape[0])
        centres[i] = x[pick]
        nearest = np.minimum(nearest, np.sum((x - centres[i]) ** 2, axis=1, dtype=np.float64))
    return centres


def kmeans_centres(x: np.ndarray, k: int, seed: int = 1234, iterations: int = 25, restarts: int = 1) -> np.ndarray:
    """k-means centres [min(k, N), dim] float32 of x [N, dim]: the best of ``restarts`` faiss runs.

    Seeded with k-means++ (as scikit-learn, which so-vits-svc uses) when N * k * dim is
    small enough, else with random frames (faiss's default; the 10k-centre reductions).
    """
    import faiss

    x = np.ascontiguousarray(x, dtype=np.float32)
    k = min(k, x.shape[0])
    if k == x.shape[0]:
        return x.copy()
    rng = np.random.default_rng(seed)
    best, best_error = None, np.inf
    for run in range(max(1, restarts)):
        kmeans = faiss.Kmeans(
            x.shape[1], k, niter=iterations, seed=seed + run, verbose=False, max_points_per_centroid=1 << 30
        )
        if x.shape[0] * k * x.shape[1] <= KMEANS_PP_BUDGET:
            kmeans.train(x, init_centroids=kmeans_plus_plus(x, k, rng))
        else:
            kmeans.train(x)
        error = float(kmeans.obj[-1]) if len(kmeans.obj) else np.inf
        if best is None or error < best_error:
            best, best_error = np.asarray(kmeans.centroids, dtype=np.float32).reshape(k, x.shape[1]), error
    assert best is not None
    return best


@dataclass(frozen=True)
class IndexInfo:
    speaker: str
    speaker_id: int
    file: str
    dim: int
    vectors: int
    source_frames: int
    n_lists: int


def build_index(
    units: np.ndarray, seed: int = 1234, kmeans_above: int = KMEANS_ABOVE, kmeans_centres_count: int = KMEANS_CENTRES
):
    """A trained, filled faiss IVF-Flat index over one speaker's unit frames [N, dim] and its list count."""
    import faiss

    rng = np.random.default_rng(seed)
    x = units[rng.permutation(units.shape[0])]
    if x.shape[0] > kmeans_above:
        x = kmeans_centres(x, kmeans_centres_count, seed)
    n = x.shape[0]
    n_lists = max(1, min(int(16 * math.sqrt(n)), n // 39))
    index = faiss.index_factory(x.shape[1], f"IVF{n_lists},Flat")
    faiss.extract_index_ivf(index).nprobe = 1
    index.train(x)
    for start in range(0, n, INDEX_ADD_BATCH):
        index.add(x[start : start + INDEX_ADD_BATCH])
    return index, n_lists


def write_indexes(
    units: dict[str, np.ndarray],
    speaker_ids: dict[str, int],
    out_dir: Path,
    kmeans_above: int = KMEANS_ABOVE,
    kmeans_centres_count: int = KMEANS_CENTRES,
) -> list[IndexInfo]:
    """``<speaker>.index`` per speaker and ``index.json`` listing them, in ``out_dir``."""
    import faiss

    out_dir.mkdir(parents=True, exist_ok=True)
    infos = []
    for speaker, x in units.items():
        index, n_lists = build_index(x, kmeans_above=kmeans_above, kmeans_centres_count=kmeans_centres_count)
        path = out_dir / f"{speaker}.index"
        faiss.write_index(index, str(path))
        infos.append(IndexInfo(speaker, speaker_ids[speaker], path.name, x.shape[1], index.ntotal, x.shape[0], n_lists))
    manifest = {"format": "svc-train-feature-index", "version": 1, "speakers": [info.__dict__ for info in infos]}
    (out_dir / "index.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return infos


def write_cluster_model(
    units: dict[str, np.ndarray], out_dir: Path, n_clusters: int, seed: int = 1234, restarts: int = 5
) -> dict[str, int]:
    """Per-speaker centres as ``<speaker>.centers.npy`` and so-vits-svc's ``kmeans_<n_clusters>.pt``.

    Returns the number of centres per speaker (fewer than asked when a speaker has fewer frames).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    reference: dict[str, dict] = {}
    counts: dict[str, int] = {}
    for speaker, x in units.items():
        centres = kmeans_centres(x, n_clusters, seed, restarts=restarts)
        np.save(out_dir / f"{speaker}.centers.npy", centres, allow_pickle=False)
        reference[speaker] = {"n_features_in_": int(x.shape[1]), "_n_threads": 4, "cluster_centers_": centres}
        counts[speaker] = int(centres.shape[0])
    torch.save(reference, out_dir / f"kmeans_{n_clusters}.pt")
    return counts


MixMode = Literal["linear", "softmax"]


def mix_checkpoints(paths: Sequence[Path], weights: Sequence[float], mode: MixMode = "linear") -> dict:
    """Weighted sum of so-vits-svc checkpoints (same keys and shapes), as so-vits-svc's ``mix_model``.

    ``linear``: weights normalised to sum 1; ``softmax``: softmax of ``weights / 100``
    (so-vits-svc's mode 0, where weights are percentages). Returns a checkpoint dict with
    the first file's ``iteration`` and ``learning_rate`` and no optimizer state.
    """
    if len(paths) < 2:
        raise ValueError("mixing needs at least two checkpoints")
    if len(weights) != len(paths):
        raise ValueError(f"{len(paths)} checkpoints but {len(weights)} weights; give one weight per checkpoint")
    w = torch.tensor([float(v) for v in weights], dtype=torch.float64)
    if mode == "softmax":
        w = torch.softmax(w / 100.0, dim=0)
    elif mode == "linear":
        if (w < 0).any() or float(w.sum()) <= 0:
            raise ValueError(f"linear mixing needs non-negative weights with a positive sum, got {list(weights)}")
        w = w / w.sum()
    else:
        raise ValueError(f"mix mode must be 'linear' or 'softmax', got {mode!r}")
    checkpoints = [read_checkpoint(p) for p in paths]
    states = [to_classic_weight_norm_keys(c["model"]) for c in checkpoints]
    first = states[0]
    for path, state in zip(paths[1:], states[1:]):
        if set(state) != set(first):
            diff = sorted(set(state) ^ set(first))
            raise CheckpointError(f"{path} and {paths[0]} have different keys ({len(diff)}: {diff[:5]} ...)")
        bad = [k for k in first if state[k].shape != first[k].shape]
        if bad:
            raise CheckpointError(
                f"{path} and {paths[0]} differ in shape for {len(bad)} tensors (e.g. {bad[0]}: "
                f"{list(state[bad[0]].shape)} vs {list(first[bad[0]].shape)}); only models of one config mix"
            )
    mixed: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, value in first.items():
        if not value.is_floating_point():
            mixed[key] = value.clone()
            continue
        total = sum(state[key].double() * float(weight) for state, weight in zip(states, w))
        mixed[key] = total.to(value.dtype)
    return {
        "model": mixed,
        "iteration": int(checkpoints[0].get("iteration", 0)),
        "optimizer": None,
        "learning_rate": checkpoints[0].get("learning_rate"),
    }


__all__ = [
    "IndexInfo",
    "build_index",
    "kmeans_centres",
    "kmeans_plus_plus",
    "mix_checkpoints",
    "speaker_units",
    "write_cluster_model",
    "write_indexes",
]
