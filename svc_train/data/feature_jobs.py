"""Compute the feature caches of many clips: resumable, in worker processes, bad clips excluded.

Each worker process loads the speech encoder and pitch network once (pool
initializer) and keeps them in this module's per-process slot.

Only a problem of a clip's own audio (`FeatureError`: unreadable, silent, too short, wrong
rate) excludes it. Any other error is not the clip's fault (a bug, a full disk, a broken
network): it stops the run as `FeatureJobError` instead of quietly emptying the dataset, and
so does a run in which most clips are excluded (the lists are then left as they are).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from svc_runtime.atomic import atomic_output
from svc_train.data.config_builder import read_filelist
from svc_train.data.features import (
    FeatureError,
    FeatureExtractor,
    FeatureSettings,
    cache_problem,
    read_clip,
    save_features,
)

Status = Literal["computed", "cached", "excluded"]

_process_state: dict[str, FeatureExtractor] = {}  # one extractor per worker process, set by init_worker


class FeatureJobError(RuntimeError):
    """The feature run must stop: an error that is not one clip's audio, or most clips excluded."""


@dataclass(frozen=True)
class FeatureOutcome:
    wav: Path
    status: Status
    reason: str | None = None


def init_worker(settings: FeatureSettings, torch_threads: int) -> None:
    """Pool initializer: load the networks once in this process."""
    if torch_threads > 0:
        torch.set_num_threads(torch_threads)
    _process_state["extractor"] = FeatureExtractor(settings)


def process_clip(wav: Path) -> FeatureOutcome:
    """Features of one clip, unless a valid cache exists; a clip whose audio is unusable is excluded.

    Raises `FeatureJobError` for any other failure (it would fail every clip alike).
    """
    extractor = _process_state["extractor"]
    if not wav.is_file():
        return FeatureOutcome(wav, "excluded", "file does not exist")
    if cache_problem(wav, extractor.settings) is None:
        return FeatureOutcome(wav, "cached")
    try:
        samples = read_clip(wav, extractor.settings.sampling_rate)
        features = extractor.extract(samples)
        expected = extractor.settings.filter_length // 2 + 1
        if features.spec.shape[0] != expected:
            raise FeatureError(f"spectrogram has {features.spec.shape[0]} bins, expected {expected}")
        save_features(wav, features, extractor.settings)
    except FeatureError as e:
        return FeatureOutcome(wav, "excluded", str(e))
    except (ValueError, RuntimeError, OSError) as e:
        raise FeatureJobError(
            f"{wav}: {type(e).__name__}: {e}. This is not a problem of the clip's audio, so no clip is excluded "
            "for it; fix the cause and rerun (computed clips are cached)"
        ) from e
    return FeatureOutcome(wav, "computed")


def clips_of(filelists: list[Path]) -> list[Path]:
    """Every clip of the file lists, each once, in list order."""
    seen: dict[Path, None] = {}
    for filelist in filelists:
        for wav in read_filelist(filelist):
            seen.setdefault(wav, None)
    return list(seen)


def drop_from_filelists(filelists: list[Path], excluded: dict[Path, str]) -> dict[Path, int]:
    """Rewrite each list without the excluded clips (atomically) and record them in ``<list>.excluded.tsv``.

    Returns how many clips each list lost. Raises `FeatureJobError`, changing nothing, when more
    than half of the lists' clips are excluded: that is a problem of the dataset, not of a few clips.
    """
    total = len(clips_of(filelists))
    if excluded and 2 * len(excluded) > total:
        wav, reason = next(iter(excluded.items()))
        raise FeatureJobError(
            f"{len(excluded)} of {total} clips were excluded (first: {wav}: {reason}); the file lists are left "
            "unchanged. Fix the dataset (e.g. `svc-train resample` for rate or channels) and rerun"
        )
    removed: dict[Path, int] = {}
    for filelist in filelists:
        lines = filelist.read_text(encoding="utf-8").splitlines()
        keep = [line for line in lines if line.strip() and Path(line.split("|")[0].strip()) not in excluded]
        dropped = [Path(line.split("|")[0].strip()) for line in lines if line.strip() and line not in keep]
        removed[filelist] = len(dropped)
        if not dropped:
            continue
        report = filelist.with_name(f"{filelist.name}.excluded.tsv")
        earlier = report.read_text(encoding="utf-8") if report.is_file() else ""
        with atomic_output(report, text=True) as handle:
            handle.write(earlier + "".join(f"{wav}\t{excluded[wav]}\n" for wav in dropped))
        with atomic_output(filelist, text=True) as handle:
            handle.write("".join(f"{line}\n" for line in keep))
    return removed


__all__ = ["FeatureJobError", "FeatureOutcome", "clips_of", "drop_from_filelists", "init_worker", "process_clip"]
