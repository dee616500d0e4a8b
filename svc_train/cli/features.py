"""`svc-train features -c config.json`: units, F0 + uv, volume and spectrogram of every listed clip."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from svc_runtime.cli.base import ExitCode, fail, say, warn

DEFAULT_F0_METHOD = "fcpe"  # its weights ship in the torchfcpe wheel: works without any download


def features_command(
    config: Path = typer.Option(..., "--config", "-c", help="config.json written by `svc-train config`.",
                                show_default=False),
    encoder_checkpoint: Path = typer.Option(
        ..., "--encoder-checkpoint", "-e", help="Speech-encoder checkpoint for the config's speech_encoder.",
        show_default=False),
    f0_method: str = typer.Option(DEFAULT_F0_METHOD, "--f0-method", help="Pitch method: fcpe (weights in the "
                                  "torchfcpe wheel), rmvpe (needs --f0-checkpoint rmvpe.pt), crepe, harvest, dio, pm."),
    f0_checkpoint: Optional[Path] = typer.Option(None, help="Pitch network checkpoint (rmvpe.pt; fcpe / crepe: "
                                                 "the wheel's weights by default)."),
    f0_threshold: Optional[float] = typer.Option(None, help="Voicing threshold (default: the method's)."),
    f0_min: Optional[float] = typer.Option(None, help="Lowest F0 searched, Hz (default: FeatureSettings')."),
    f0_max: Optional[float] = typer.Option(None, help="Highest F0 searched, Hz (default: FeatureSettings')."),
    workers: int = typer.Option(0, "--workers", "-j", min=0,
                                help="Worker processes, each loading the networks; 0 = in this process."),
    threads: int = typer.Option(0, min=0, help="Torch threads per worker (0: torch's default)."),
) -> None:
    """Compute and cache features next to each clip (CLIP.wav.features.npz); resumable; bad clips excluded.

    The speech encoder and pitch network are loaded once before any clip, so a missing checkpoint
    or a config whose ssl_dim does not match the encoder's units stops here, with the fix.
    """
    from svc_train.config import SvcConfig
    from svc_train.data.feature_jobs import FeatureJobError, clips_of, drop_from_filelists, init_worker, process_clip
    from svc_train.data.features import FEATURE_SUFFIX, FeatureConfigError, FeatureExtractor, FeatureSettings
    from svc_train.data.parallel import run_jobs

    if f0_method == "rmvpe" and f0_checkpoint is None:
        fail("rmvpe needs its checkpoint: --f0-checkpoint pretrain/rmvpe.pt "
             f"(or --f0-method {DEFAULT_F0_METHOD}, whose weights ship in the torchfcpe wheel)")
    if not encoder_checkpoint.exists():
        fail(f"{encoder_checkpoint}: speech-encoder checkpoint not found")
    pitch = {k: v for k, v in (("f0_threshold", f0_threshold), ("f0_min", f0_min), ("f0_max", f0_max))
             if v is not None}
    try:
        cfg = SvcConfig.load(config)
        settings = FeatureSettings.from_config(
            cfg, encoder_checkpoint, f0_method,
            f0_checkpoint=str(f0_checkpoint.resolve()) if f0_checkpoint else None, **pitch,
        )
        settings.pitch_options()  # validates the method, range and threshold
        filelists = [Path(cfg.data.training_files), Path(cfg.data.validation_files)]
        clips = clips_of(filelists)
    except (OSError, ValueError) as e:
        fail(str(e) if str(config) in str(e) else f"{config}: {e}")
    if not clips:
        fail(f"{config}: the file lists are empty")
    try:  # load both networks once, up front: a missing file or a width mismatch fails before any clip
        extractor = FeatureExtractor(settings)
    except (OSError, ValueError, RuntimeError) as e:
        fail(f"{f0_method} / {cfg.model.speech_encoder}: {e}")
    try:
        extractor.check_config(cfg, config)
    except FeatureConfigError as e:
        fail(str(e))
    counts = {"computed": 0, "cached": 0, "excluded": 0}
    excluded: dict[Path, str] = {}
    try:  # an error that is not one clip's audio, or most clips excluded, stops the run (lists unchanged)
        for outcome in run_jobs(
            process_clip, clips, workers, "features", initializer=init_worker, initargs=(settings, threads),
            start_method="spawn",
        ):
            counts[outcome.status] += 1
            if outcome.status == "excluded":
                excluded[outcome.wav] = outcome.reason or "unknown"
                warn(f"{outcome.wav}: {outcome.reason}", label="excluded")
        removed = drop_from_filelists(filelists, excluded)
    except FeatureJobError as e:
        fail(str(e), ExitCode.FAILED)
    for filelist, n in removed.items():
        if n:
            say(f"removed {n} clip(s) from {filelist} (reasons in {filelist.name}.excluded.tsv)")
    say(
        f"{counts['computed']} computed, {counts['cached']} already cached, {counts['excluded']} excluded "
        f"(cache: <clip>.wav{FEATURE_SUFFIX})"
    )
    if counts["computed"] + counts["cached"] == 0:
        raise typer.Exit(int(ExitCode.FAILED))

