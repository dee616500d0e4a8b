"""Blend content units with the target speaker's own features: faiss top-k retrieval or k-means centres.

so-vits-svc 4.1 semantics: retrieval takes the 8 nearest training features of each frame,
weights them by 1 / distance^2 and mixes the weighted mean in by `ratio`; cluster blending
replaces each frame by its nearest k-means centre, mixed in by `ratio`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from svc_runtime.errors import UsageError

RETRIEVAL_TOP_K = 8


class RetrievalError(UsageError):
    """A retrieval index or cluster file is missing, unreadable or does not fit the model."""


def blend(c: np.ndarray, other: np.ndarray, ratio: float) -> np.ndarray:
    """ratio * other + (1 - ratio) * c, both [dim, T] float32."""
    return (ratio * other + (1.0 - ratio) * c).astype(np.float32)


class FeatureIndex:
    """A faiss index of one speaker's training features (needs the optional `faiss` package)."""

    def __init__(self, path: str | Path, dim: int):
        try:
            import faiss  # optional dependency
        except ImportError:
            raise RetrievalError(
                "feature retrieval needs faiss: pip install faiss-cpu (or faiss-gpu-cu12)"
            ) from None
        try:
            self.index = faiss.read_index(str(path))
        except RuntimeError as e:
            raise RetrievalError(f"{path}: not a readable faiss index ({str(e).splitlines()[0]})") from None
        if self.index.d != dim:
            raise RetrievalError(f"{path}: index holds {self.index.d}-dim features, the model uses {dim}")
        if self.index.ntotal == 0:
            raise RetrievalError(f"{path}: the index is empty")
        self.vectors = self.index.reconstruct_n(0, self.index.ntotal).astype(np.float32)

    def retrieve(self, c: np.ndarray, k: int = RETRIEVAL_TOP_K) -> np.ndarray:
        """Weighted mean of the k nearest features of every frame: c [dim, T] -> [dim, T]."""
        query = np.ascontiguousarray(c.T, dtype=np.float32)
        k = min(k, self.index.ntotal)
        score, ix = self.index.search(query, k)
        weight = np.square(1.0 / np.maximum(score, 1e-12))
        weight /= weight.sum(axis=1, keepdims=True)
        return np.einsum("tk,tkd->dt", weight, self.vectors[ix]).astype(np.float32)


class ClusterCentres:
    """k-means centres [K, dim] of one speaker's features, from .npy (or .npz key `centers`)."""

    def __init__(self, path: str | Path, dim: int):
        p = Path(path)
        try:
            data = np.load(p, allow_pickle=False)
            centres = data["centers"] if isinstance(data, np.lib.npyio.NpzFile) else data
        except (OSError, ValueError, KeyError) as e:
            raise RetrievalError(f"{p}: not a readable cluster-centre file ({e})") from None
        centres = np.asarray(centres, dtype=np.float32)
        if centres.ndim != 2 or centres.shape[1] != dim:
            raise RetrievalError(f"{p}: centres must be [K, {dim}], got {list(centres.shape)}")
        self.centres = centres
        self._sq = np.sum(centres.astype(np.float64) ** 2, axis=1)

    def nearest(self, c: np.ndarray) -> np.ndarray:
        """The nearest centre of every frame: c [dim, T] -> [dim, T]."""
        x = c.T.astype(np.float64)
        d = self._sq[None, :] - 2.0 * x @ self.centres.T.astype(np.float64)
        return self.centres[np.argmin(d, axis=1)].T.copy()
