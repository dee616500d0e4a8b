"""`svc-train cluster -c config.json -o OUT_DIR`: per-speaker k-means cluster model of the training units."""

from __future__ import annotations

from pathlib import Path

import typer

from svc_runtime.cli.base import fail, say
from svc_train.cli._dataset_units import units_of_config


def cluster_command(
    config: Path = typer.Option(..., "--config", "-c", help="config.json whose clips have features."),
    out_dir: Path = typer.Option(..., "--output", "-o", help="Folder for <speaker>.centers.npy and kmeans_<K>.pt."),
    n_clusters: int = typer.Option(10000, min=1, help="Centres per speaker (so-vits-svc: 10000)."),
    restarts: int = typer.Option(5, min=1, help="k-means runs per speaker; the one with the lowest error is kept."),
) -> None:
    """Train the k-means cluster model (so-vits-svc's kmeans_10000.pt, plus a .npy per speaker for svc-run)."""
    from svc_train.index import write_cluster_model

    try:
        units, _ = units_of_config(config)
        counts = write_cluster_model(units, out_dir, n_clusters, restarts=restarts)
    except (OSError, ValueError) as e:
        fail(str(e) if str(config) in str(e) else f"{config}: {e}")
    for speaker, count in counts.items():
        note = "" if count == n_clusters else f" (only {count} frames: every frame is a centre)"
        say(f"{speaker}: {count} centres{note} -> {out_dir / (speaker + '.centers.npy')}")
    say(f"so-vits-svc cluster model: {out_dir / f'kmeans_{n_clusters}.pt'}")
