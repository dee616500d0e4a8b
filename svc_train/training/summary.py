"""What the trainer records: TensorBoard scalars, spectrogram and pitch images, audio; and a JSON-lines log.

Only the main process (rank 0) creates a :class:`TrainingLog`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


def _figure_to_array(fig) -> np.ndarray:
    """Render a matplotlib figure to an RGB array [H, W, 3] uint8 (Agg canvas; no GUI backend involved)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    return np.ascontiguousarray(rgba[..., :3])


def plot_spectrogram(spectrogram: np.ndarray) -> np.ndarray:
    """Image [H, W, 3] of a [channels, frames] spectrogram."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 2))
    ax = fig.add_subplot()
    image = ax.imshow(spectrogram, aspect="auto", origin="lower", interpolation="none")
    fig.colorbar(image, ax=ax)
    ax.set_xlabel("Frames")
    ax.set_ylabel("Channels")
    fig.tight_layout()
    return _figure_to_array(fig)


def plot_curves(*curves: np.ndarray) -> np.ndarray:
    """Image [H, W, 3] of one or more [frames] curves on one axis (e.g. target and predicted log-F0)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 2))
    ax = fig.add_subplot()
    for curve in curves:
        ax.plot(curve)
    fig.tight_layout()
    return _figure_to_array(fig)


class TrainingLog:
    """TensorBoard writers (``MODEL_DIR`` for training, ``MODEL_DIR/eval`` for evaluation, as so-vits-svc)
    plus ``MODEL_DIR/metrics.jsonl``: one JSON object per logged event."""

    def __init__(self, model_dir: Path, tensorboard: bool = True) -> None:
        self.model_dir = model_dir
        self.metrics_path = model_dir / "metrics.jsonl"
        self.writer = self.eval_writer = None
        self.tensorboard = tensorboard
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(model_dir))
            self.eval_writer = SummaryWriter(log_dir=str(model_dir / "eval"))

    def record(self, event: dict[str, Any]) -> None:
        with self.metrics_path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(event) + "\n")

    def scalars(self, step: int, values: dict[str, float], evaluation: bool = False) -> None:
        writer = self.eval_writer if evaluation else self.writer
        if writer is not None:
            for key, value in values.items():
                writer.add_scalar(key, value, step)

    def images(self, step: int, images: dict[str, np.ndarray], evaluation: bool = False) -> None:
        writer = self.eval_writer if evaluation else self.writer
        if writer is not None:
            for key, image in images.items():
                writer.add_image(key, image, step, dataformats="HWC")

    def audios(self, step: int, audios: dict[str, np.ndarray], sample_rate: int) -> None:
        if self.eval_writer is not None:
            for key, audio in audios.items():
                self.eval_writer.add_audio(key, audio, step, sample_rate)

    def close(self) -> None:
        for writer in (self.writer, self.eval_writer):
            if writer is not None:
                writer.flush()
                writer.close()


__all__ = ["TrainingLog", "plot_curves", "plot_spectrogram"]
