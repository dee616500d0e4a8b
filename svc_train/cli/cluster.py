"""`svc-train cluster -c config.json -o OUT_DIR`: per-speaker k-means cluster model of the training units."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from svc_train.cli._dataset_units import units_of_config
from svc_train.cli._errors import exit_with_error
from svc_train.cli.app import app
from svc_train.index import write_cluster_model


@app.command("cluster")
def cluster_command(
    config: Path = typer.Option(..., "--config", "-c", help="config.json whose clips have features."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Folder for <speaker>.centers.npy and kmeans_<K>.pt."),
    n_clusters: int = typer.Option(10000, help="Centres per speaker (so-vits-svc: 10000)."),
    restarts: int = typer.Option(5, help="k-means runs per speaker; the one with the lowest error is kept."),
) -> None:
    """Train the k-means cluster model (so-vits-svc's kmeans_10000.pt, plus a .npy per speaker for svc-run)."""
    console = Console(stderr=True)
    if n_clusters < 1:
        exit_with_error("--n-clusters must be at least 1")
    try:
        units, _ = units_of_config(config)
        counts = write_cluster_model(units, out_dir, n_clusters, restarts=restarts)
    except (OSError, ValueError) as e:
        exit_with_error(str(e) if str(config) in str(e) else f"{config}: {e}")
    for speaker, count in counts.items():
        note = "" if count == n_clusters else f" (only {count} frames: every frame is a centre)"
        console.print(f"{speaker}: {count} centres{note} -> {out_dir / (speaker + '.centers.npy')}", soft_wrap=True)
    console.print(f"so-vits-svc cluster model: {out_dir / f'kmeans_{n_clusters}.pt'}")
