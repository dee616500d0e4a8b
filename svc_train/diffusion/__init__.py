"""Shallow diffusion (Unit2Mel + Gaussian diffusion) and the standalone NSF-HiFiGAN vocoder."""

from svc_train.diffusion.config import DiffusionConfig, DiffusionConfigError
from svc_train.diffusion.gaussian import GaussianDiffusion
from svc_train.diffusion.nsf_hifigan import (
    NsfHifiGanVocoder,
    VocoderConfig,
    VocoderLoadError,
    load_vocoder,
    save_vocoder,
)
from svc_train.diffusion.unit2mel import Unit2Mel
from svc_train.diffusion.vocoder_mel import VocoderMel
from svc_train.diffusion.wavenet import WaveNet

__all__ = [
    "DiffusionConfig",
    "DiffusionConfigError",
    "GaussianDiffusion",
    "NsfHifiGanVocoder",
    "Unit2Mel",
    "VocoderConfig",
    "VocoderLoadError",
    "VocoderMel",
    "WaveNet",
    "load_vocoder",
    "save_vocoder",
]
