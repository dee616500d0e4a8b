"""`svc-train index -c config.json -o OUT_DIR`: per-speaker faiss retrieval indexes of the training units."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from svc_runtime.cli.base import fail, say
from svc_train.cli._dataset_units import units_of_config


def index_command(
    config: Path = typer.Option(..., "--config", "-c", help="config.json whose clips have features."),
    out_dir: Path = typer.Option(..., "--output", "-o", help="Folder for <speaker>.index files and index.json."),
    kmeans_above: Optional[int] = typer.Option(
        None, help="Reduce a speaker's frames to 10k k-means centres above this many (default: svc_train.index's)."),
) -> None:
    """Build the feature-retrieval index of every speaker (faiss IVF-Flat, as so-vits-svc / RVC)."""
    from svc_train.index import write_indexes

    try:
        units, speaker_ids = units_of_config(config)
        extra = {} if kmeans_above is None else {"kmeans_above": kmeans_above}
        infos = write_indexes(units, speaker_ids, out_dir, **extra)
    except (OSError, ValueError) as e:
        fail(str(e) if str(config) in str(e) else f"{config}: {e}")
    for info in infos:
        say(f"{info.speaker}: {info.source_frames} frames -> {info.vectors} vectors, IVF{info.n_lists} "
            f"-> {out_dir / info.file}")
