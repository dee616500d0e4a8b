"""Random-weight models at real sizes for the benchmarks, built once into a cache folder outside git.

Per size (`standard`: so-vits-svc 4.1 config_template; `tiny`: its tiny template;
`micro`: a few-channel model for the smoke test) the cache holds:

    <cache>/<size>/config.json     so-vits-svc 4.1 config (one speaker)
    <cache>/<size>/G_0.pth         random generator checkpoint (`svc-train init` when present)
    <cache>/<size>/bundle/         `svc-export` bundle: generator, speech encoder, FCPE pitch graph
                                   (micro: no pitch graph; both pipelines use the classic `pm` tracker)
    <cache>/encoders/<name>/       random HuBERT in Hugging Face form (config.json + pytorch_model.bin)

The encoder goes through the real loader (`svc_train.load_content_encoder`); pitch is
FCPE with the real weights the torchfcpe wheel ships. Nothing is downloaded.
The default cache is ~/.cache/svc-bench (override with SVC_BENCH_CACHE).
After an exporter change, `python -m benchmarks.models --rebuild-bundle [SIZE ...]` re-exports the
bundles from the same cached checkpoints (an existing bundle is otherwise reused as it is).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

ModelSize = Literal["standard", "tiny", "micro"]
SIZES: tuple[str, ...] = ("standard", "tiny", "micro")
SEED = 1234
SPEAKER = "bench"
CACHE_FORMAT = 2
"""Bump when the cached files must be rebuilt (a new layout or new sizes)."""

HUBERT_BASE = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "conv_dim": [512] * 7,
}
"""HuBERT-base / ContentVec sizes (what vec768l12 runs in so-vits-svc)."""

HUBERT_MICRO = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 12,
    "num_attention_heads": 2,
    "conv_dim": [16] * 7,
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 4,
}
"""A few-channel HuBERT for the smoke test (12 layers, as vec768l12 reads layer 12); 32-dim units."""

_MICRO_MODEL = {
    "inter_channels": 8,
    "hidden_channels": 8,
    "filter_channels": 16,
    "n_heads": 2,
    "n_layers": 1,
    "upsample_initial_channel": 32,
    "n_flow_layer": 2,
    "use_automatic_f0_prediction": False,
}


def default_cache() -> Path:
    return Path(os.environ.get("SVC_BENCH_CACHE", Path.home() / ".cache" / "svc-bench"))


@dataclass(frozen=True)
class ModelSet:
    """Paths of one benchmark model size; `bundle` is the exported runtime folder."""

    size: str
    root: Path
    config: Path
    checkpoint: Path
    encoder: Path
    bundle: Path
    pitch: str = "fcpe"

    @property
    def encoder_name(self) -> str:
        return "vec768l12"


def config_dict(size: ModelSize, ssl_dim: int) -> dict:
    """A so-vits-svc 4.1 config for `size` with one speaker and the given unit size."""
    from svc_train.data.config_builder import config_template

    config = config_template("tiny" if size == "tiny" else "standard")
    config["spk"] = {SPEAKER: 0}
    model = config["model"]
    model["n_speakers"] = 1
    model["ssl_dim"] = ssl_dim
    model["gin_channels"] = ssl_dim
    if size == "micro":
        model.update(_MICRO_MODEL)
        config["data"]["filter_length"] = config["data"]["win_length"] = 512  # smaller posterior-encoder input
    return config


def _cli(name: str) -> list[str]:
    """The console script `name` as a command list, run with this interpreter."""
    module = {"svc-train": "svc_train.cli", "svc-export": "svc_export.cli", "svc-run": "svc_runtime.cli"}[name]
    return [sys.executable, "-c", f"from {module} import main; main()"]


def _hf_encoder(folder: Path, sizes: dict, seed: int = SEED) -> Path:
    """A randomly initialised transformers HubertModel saved in Hugging Face form (config.json + .bin)."""
    marker = folder / "config.json"
    if marker.is_file() and (folder / "pytorch_model.bin").is_file():
        return folder
    import torch
    from transformers import HubertConfig, HubertModel

    torch.manual_seed(seed)
    config = HubertConfig(**sizes, feat_extract_norm="group", do_stable_layer_norm=False)
    model = HubertModel(config).eval()
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    torch.save(state, staging / "pytorch_model.bin")
    (staging / "config.json").write_text(config.to_json_string(), encoding="utf-8")
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    return folder


def _init_checkpoint(config_path: Path, checkpoint: Path, seed: int = SEED) -> None:
    """`svc-train init` when the CLI has it; else the same through the Python API."""
    probe = subprocess.run(_cli("svc-train") + ["init", "--help"], capture_output=True, text=True)
    if probe.returncode == 0:
        subprocess.run(
            _cli("svc-train") + ["init", "-c", str(config_path), "-o", str(checkpoint), "--seed", str(seed)],
            check=True, capture_output=True, text=True,
        )
        return
    import torch

    from svc_train.checkpoint import build_generator, save_checkpoint

    torch.manual_seed(seed)
    model = build_generator(config_path)
    save_checkpoint(checkpoint, model, iteration=0, learning_rate=1e-4)


def _bundle_is_current(bundle: Path) -> bool:
    """True when `bundle` holds a manifest of the schema this runtime reads (older ones are exported again)."""
    from svc_runtime.bundle.manifest import SCHEMA_VERSION

    try:
        return json.loads((bundle / "manifest.json").read_text(encoding="utf-8")).get("schema_version") == SCHEMA_VERSION
    except (OSError, ValueError, AttributeError):
        return False


def _export_bundle(models: ModelSet) -> None:
    """`svc-export G_0.pth --config config.json -o bundle --int8` with the encoder (and the FCPE pitch
    graph); `--int8` adds the int8 CPU graphs that `--precisions int8` benchmarks (fp32 stays the default)."""
    cmd = _cli("svc-export") + [
        str(models.checkpoint), "--config", str(models.config),
        "-o", str(models.bundle), "--encoder-checkpoint", str(models.encoder), "--int8",
    ]
    if models.pitch == "fcpe":
        cmd += ["--pitch", "fcpe"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(
            f"svc-export failed for the {models.size} benchmark model (exit {result.returncode}):\n"
            f"{' '.join(cmd)}\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
        )


def ensure_models(size: ModelSize, cache: Path | None = None, *, bundle: bool = True) -> ModelSet:
    """Build (once) and return the model files of `size`; `bundle=False` skips the export."""
    if size not in SIZES:
        raise ValueError(f"unknown benchmark model size {size!r}; choose one of {SIZES}")
    cache = Path(cache) if cache is not None else default_cache()
    cache = cache / f"v{CACHE_FORMAT}"
    encoder_name = "hubert_micro_hf" if size == "micro" else "hubert_base_hf"
    encoder = _hf_encoder(cache / "encoders" / encoder_name, HUBERT_MICRO if size == "micro" else HUBERT_BASE)
    ssl_dim = HUBERT_MICRO["hidden_size"] if size == "micro" else HUBERT_BASE["hidden_size"]
    root = cache / size
    root.mkdir(parents=True, exist_ok=True)
    models = ModelSet(size, root, root / "config.json", root / "G_0.pth", encoder, root / "bundle",
                      pitch="pm" if size == "micro" else "fcpe")
    if not models.config.is_file():
        models.config.write_text(json.dumps(config_dict(size, ssl_dim), indent=2) + "\n", encoding="utf-8")
    if not models.checkpoint.is_file():
        _init_checkpoint(models.config, models.checkpoint)
    if bundle and not _bundle_is_current(models.bundle):
        shutil.rmtree(models.bundle, ignore_errors=True)  # none yet, or one of an older schema
        _export_bundle(models)
    return models


def main(argv: list[str] | None = None) -> None:
    """`python -m benchmarks.models [SIZE ...]`: build the cache (all sizes by default)."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", default=list(SIZES), choices=SIZES)
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--no-bundle", action="store_true", help="only config, checkpoint and encoder")
    parser.add_argument("--rebuild-bundle", action="store_true",
                        help="re-export the bundle from the cached checkpoint (after an exporter change; the "
                             "random weights stay the same)")
    args = parser.parse_args(argv)
    for size in args.sizes:
        if args.rebuild_bundle and not args.no_bundle:
            stale = ensure_models(size, args.cache, bundle=False).bundle
            if stale.is_dir():
                shutil.rmtree(stale)
        models = ensure_models(size, args.cache, bundle=not args.no_bundle)
        sys.stdout.write(f"{size}: {models.root}\n")


if __name__ == "__main__":
    main()
