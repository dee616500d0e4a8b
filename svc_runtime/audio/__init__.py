"""Audio in and out: decode any libsndfile format to mono float32, resample with soxr, write atomically."""

from svc_runtime.audio.decode import (
    MIN_DURATION_S,
    AudioInputError,
    DecodedAudio,
    decode_audio,
    mix_to_mono,
)
from svc_runtime.audio.dsp import fit_length, limit_peak, remove_dc
from svc_runtime.audio.resample import resample, resampled_length
from svc_runtime.audio.write import OUTPUT_FORMATS, write_audio_atomic

__all__ = [
    "MIN_DURATION_S",
    "OUTPUT_FORMATS",
    "AudioInputError",
    "DecodedAudio",
    "decode_audio",
    "fit_length",
    "limit_peak",
    "mix_to_mono",
    "remove_dc",
    "resample",
    "resampled_length",
    "write_audio_atomic",
]
