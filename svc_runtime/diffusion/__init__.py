"""Shallow diffusion, only-diffusion and NSF-HiFiGAN enhancement over exported graphs (no torch)."""

from svc_runtime.diffusion.enhancer import Enhancer, adaptive_rate
from svc_runtime.diffusion.mel import MelSpec, log_mel
from svc_runtime.diffusion.samplers import METHODS, sample
from svc_runtime.diffusion.schedule import NoiseSchedule
from svc_runtime.diffusion.shallow import ShallowDiffusion, Vocoder
from svc_runtime.diffusion.spec import SPEC_FILE, DiffusionSpec, DiffusionSpecError, VocoderSpec

__all__ = [
    "METHODS",
    "SPEC_FILE",
    "DiffusionSpec",
    "DiffusionSpecError",
    "Enhancer",
    "MelSpec",
    "NoiseSchedule",
    "ShallowDiffusion",
    "Vocoder",
    "VocoderSpec",
    "adaptive_rate",
    "log_mel",
    "sample",
]
