"""The NSF-HiFiGAN vocoder's log-mel front end in torch (training and export side).

Same numbers as so-vits-svc 4.1's ``nvSTFT.STFT.get_mel`` (see
:mod:`svc_runtime.diffusion.mel` for the exact recipe, which the runtime repeats in
numpy). Windows and filterbanks live on the instance, never in module globals.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from svc_runtime.diffusion.mel import LOG_CLIP, MAGNITUDE_EPS, MelSpec
from svc_train.mel import mel_basis


class VocoderMel:
    """Callable ``audio [B, N] -> log-mel [B, num_mels, frames]`` for one vocoder config."""

    def __init__(self, spec: MelSpec) -> None:
        spec.validate()
        self.spec = spec
        basis = mel_basis(spec.sampling_rate, spec.n_fft, spec.num_mels, spec.fmin, spec.fmax)
        self._basis = torch.from_numpy(basis)
        self._windows: dict[int, torch.Tensor] = {}

    def _window(self, win: int, device: torch.device) -> torch.Tensor:
        if win not in self._windows:
            self._windows[win] = torch.hann_window(win)
        return self._windows[win].to(device)

    @torch.no_grad()
    def __call__(self, audio: torch.Tensor, keyshift: float = 0.0, speed: float = 1.0) -> torch.Tensor:
        if audio.dim() == 1:
            audio = audio[None]
        spec = self.spec
        factor = 2.0 ** (keyshift / 12.0)
        n_fft = int(np.round(spec.n_fft * factor))
        win = int(np.round(spec.win_size * factor))
        hop = int(np.round(spec.hop_size * speed))
        length = audio.size(-1)
        left = (win - hop) // 2
        right = max((win - hop + 1) // 2, win - length - left)
        mode = "reflect" if right < length else "constant"
        y = F.pad(audio.float().unsqueeze(1), (left, right), mode=mode).squeeze(1)
        stft = torch.stft(
            y, n_fft, hop_length=hop, win_length=win, window=self._window(win, y.device),
            center=False, normalized=False, onesided=True, return_complex=True,
        )
        magnitude = torch.sqrt(stft.real.pow(2) + stft.imag.pow(2) + MAGNITUDE_EPS)
        if keyshift != 0:
            bins = spec.n_fft // 2 + 1
            if magnitude.size(1) < bins:
                magnitude = F.pad(magnitude, (0, 0, 0, bins - magnitude.size(1)))
            magnitude = magnitude[:, :bins, :] * (spec.win_size / win)
        mel = torch.matmul(self._basis.to(magnitude.device), magnitude)
        return torch.log(torch.clamp(mel, min=LOG_CLIP))


__all__ = ["VocoderMel"]
