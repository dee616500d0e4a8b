"""Helpers shared by the neural pitch tests (CREPE, FCPE, RMVPE)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch


def cents_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|1200 log2(a / b)| in float64 cents; a, b in Hz, same shape."""
    return np.abs(1200.0 * np.log2(a.astype(np.float64) / b.astype(np.float64)))


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an .npz fixture, loaded into memory."""
    with np.load(path) as data:
        return dict(data)


def hide_installed_wheels(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every package look uninstalled to `importlib` (find_spec and metadata files)."""
    import importlib.metadata
    import importlib.util

    def not_installed(name: str):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(importlib.metadata, "files", not_installed)


def export_salience_graph(graph: torch.nn.Module, example: torch.Tensor, path: Path) -> None:
    """Trace an audio [B, N] -> salience [B, frames, 360] graph to ONNX with dynamic batch and length."""
    torch.onnx.export(
        graph, (example,), str(path), dynamo=False, opset_version=17,
        input_names=["audio"], output_names=["salience"],
        dynamic_axes={"audio": {0: "batch", 1: "samples"}, "salience": {0: "batch", 1: "frames"}},
    )


def assert_session_matches_graph(session, graph: torch.nn.Module, shapes, rng: np.random.Generator) -> None:
    """For each (batch, samples) shape, random audio through ONNX Runtime and torch agree within 1e-4
    and give one 360-bin salience row per 160 samples (+1)."""
    for shape in shapes:
        audio = (rng.standard_normal(shape) * 0.1).astype(np.float32)
        (got,) = session.run(None, {"audio": audio})
        with torch.inference_mode():
            expected = graph(torch.from_numpy(audio)).numpy()
        assert got.shape == expected.shape == (shape[0], shape[1] // 160 + 1, 360)
        assert np.abs(got - expected).max() < 1e-4
