"""A small bundle for the runtime pipeline tests, exported once per test process.

Generator: the sovits41_small architecture (tests/fixtures/sovits41_small/config.json)
with `ssl_dim` set to 64 so that the tiny random ContentVec of
tests/fixtures/contentvec_small (64-dim last layer) feeds it, freshly initialised with a
fixed seed (what `svc-train init` writes). The fixture's own G_1.pth weights are not used:
they were set so that every sub-module matters, and its text-encoder attention is global
(dropping frames 300 frames away still moves the output by 1e-2), so no finite chunk
context can reproduce whole-file output with them. Speech encoder: the contentvec_small
fairseq checkpoint. No pitch graph: the tests use the classic `pm` method.
"""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).parent / "fixtures"
SR = 44100
HOP = 512


@functools.lru_cache(maxsize=1)
def small_bundle_dir() -> Path:
    import torch

    from svc_export.exporter import ExportRequest, export_bundle
    from svc_train.checkpoint import build_generator, save_checkpoint

    torch.set_num_threads(2)
    work = Path(tempfile.mkdtemp(prefix="svc-pipeline-bundle-"))
    atexit.register(shutil.rmtree, work, True)
    config = json.loads((FIXTURES / "sovits41_small" / "config.json").read_text())
    config["model"]["ssl_dim"] = 64
    (work / "config.json").write_text(json.dumps(config, indent=2))
    torch.manual_seed(1234)
    model = build_generator(work / "config.json")
    save_checkpoint(work / "G.pth", model, 0, 1e-4)
    export_bundle(
        ExportRequest(
            checkpoint=work / "G.pth",
            config=work / "config.json",
            output=work / "bundle",
            encoder_checkpoint=FIXTURES / "contentvec_small" / "fairseq_checkpoint.pt",
            simplify=False,
        )
    )
    return work / "bundle"


def vibrato_tone(seconds: float, sr: int = SR, base_hz: float = 220.0, depth: float = 0.3,
                 rate_hz: float = 0.5, amp: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """A harmonic tone with slow vibrato and tremolo: (audio [N] float32, f0 per sample [N] Hz)."""
    t = np.arange(int(sr * seconds)) / sr
    f0 = base_hz * 2.0 ** (depth * np.sin(2 * np.pi * rate_hz * t))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    wave = sum(np.sin(k * phase) / k for k in (1, 2, 3))
    audio = amp * wave * (1 + 0.3 * np.sin(2 * np.pi * 3 * t)) / 1.5
    return audio.astype(np.float32), f0
