"""`svc-train index -c config.json -o OUT_DIR`: per-speaker faiss retrieval indexes of the training units."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from svc_train.cli._dataset_units import units_of_config
from svc_train.cli._errors import exit_with_error
from svc_train.cli.app import app
from svc_train.index import KMEANS_ABOVE, write_indexes


@app.command("index")
def index_command(
    config: Path = typer.Option(..., "--config", "-c", help="config.json whose clips have features."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Folder for <speaker>.index files and index.json."),
    kmeans_above: int = typer.Option(KMEANS_ABOVE, help="Reduce a speaker's frames to 10k k-means centres above this."),
) -> None:
    """Build the feature-retrieval index of every speaker (faiss IVF-Flat, as so-vits-svc / RVC)."""
    console = Console(stderr=True)
    try:
        units, speaker_ids = units_of_config(config)
        infos = write_indexes(units, speaker_ids, out_dir, kmeans_above=kmeans_above)
    except (OSError, ValueError) as e:
        exit_with_error(str(e) if str(config) in str(e) else f"{config}: {e}")
    for info in infos:
        console.print(
            f"{info.speaker}: {info.source_frames} frames -> {info.vectors} vectors, IVF{info.n_lists} "
            f"-> {out_dir / info.file}",
            soft_wrap=True,
        )
