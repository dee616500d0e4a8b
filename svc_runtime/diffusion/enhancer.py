"""NSF-HiFiGAN enhancement (so-vits-svc's ``--enhance``, ``modules/enhancer.py``), numpy + ONNX.

The converted audio is re-synthesised by the vocoder from its own mel and the F0:
with an adaptive key ``k`` the audio is first resampled to
``100 * round(vocoder_sr * 2**(k/12) / 100)`` Hz and the F0 scaled by
``vocoder_sr / that rate`` (so a high voice falls inside the vocoder's range), then the
vocoder output, read at that rate, is resampled back. Unlike the reference, which returns
audio at the vocoder's rate a few samples short, the result here is at the input's rate
and length.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from svc_runtime.audio.dsp import fit_length
from svc_runtime.audio.resample import resample
from svc_runtime.diffusion.shallow import Session, Vocoder, open_session, read_spec
from svc_runtime.diffusion.spec import SPEC_FILE, VocoderSpec


def adaptive_rate(vocoder_sr: int, adaptive_key: float) -> int:
    """The rate the audio is played to the vocoder at, rounded to 100 Hz as the reference does."""
    factor = 2.0 ** (-adaptive_key / 12.0)
    return 100 * int(np.round(vocoder_sr / factor / 100))


class Enhancer:
    def __init__(self, vocoder: Vocoder) -> None:
        self.vocoder = vocoder

    @classmethod
    def load(cls, folder: str | Path, providers: list[str] | None = None, threads: int = 0) -> Enhancer:
        folder = Path(folder)
        raw = read_spec(folder)
        spec = VocoderSpec.from_dict(raw.get("vocoder"), str(folder / SPEC_FILE))
        return cls(Vocoder(spec, open_session(folder / spec.graph, threads, providers)))

    @classmethod
    def from_session(cls, spec: VocoderSpec, session: Session) -> Enhancer:
        return cls(Vocoder(spec, session))

    def enhance(
        self,
        audio: np.ndarray,
        sample_rate: int,
        f0: np.ndarray,
        hop_size: int,
        adaptive_key: float = 0.0,
        seed: int | None = 0,
    ) -> np.ndarray:
        """audio [N] at ``sample_rate``; f0 [T] Hz on the (sample_rate, hop_size) grid.

        Returns enhanced audio [N] float32 at ``sample_rate``. ``seed`` draws the source
        noise (None: no noise, fully deterministic).
        """
        audio = np.asarray(audio, dtype=np.float32)
        f0 = np.asarray(f0, dtype=np.float64)
        if audio.ndim != 1 or f0.ndim != 1 or len(f0) == 0:
            raise ValueError(f"enhance takes mono audio [N] and f0 [T], got {audio.shape} and {f0.shape}")
        spec = self.vocoder.spec
        rate = adaptive_rate(spec.sampling_rate, adaptive_key)
        real_factor = spec.sampling_rate / rate
        played = resample(audio, sample_rate, rate)
        if len(played) < spec.hop_size:
            raise ValueError(f"audio of {len(audio)} samples is too short to enhance (less than one vocoder frame)")
        n_frames = len(played) // spec.hop_size + 1
        time_org = (hop_size / sample_rate) * np.arange(len(f0)) / real_factor
        time_frame = (spec.hop_size / spec.sampling_rate) * np.arange(n_frames)
        f0_res = np.interp(time_frame, time_org, f0 * real_factor, left=f0[0] * real_factor, right=f0[-1] * real_factor)
        mel = log_mel_for(self.vocoder, played)
        f0_res = f0_res[None, : mel.shape[-1]].astype(np.float32)
        rng = np.random.default_rng(seed) if seed is not None else None
        out = self.vocoder(mel, f0_res, rng=rng)[0, 0]
        back = resample(out, rate, sample_rate)
        return fit_length(back, len(audio))


def log_mel_for(vocoder: Vocoder, audio_at_vocoder_rate: np.ndarray) -> np.ndarray:
    """The vocoder's mel of audio already at its rate (no resampling)."""
    return vocoder.mel(audio_at_vocoder_rate, vocoder.spec.sampling_rate)


__all__ = ["Enhancer", "adaptive_rate"]
