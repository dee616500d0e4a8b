"""Whole-file conversion with a bundle: slicing, features, generator, stitching (numpy + ONNX Runtime)."""

from svc_runtime.pipeline.convert import Converter, PreparedFile
from svc_runtime.pipeline.noise import NoiseField
from svc_runtime.pipeline.options import ConvertOptions
from svc_runtime.pipeline.spkmix import SpeakerMix, SpeakerMixError, load_speaker_mix, parse_speaker_mix

__all__ = [
    "ConvertOptions",
    "Converter",
    "NoiseField",
    "PreparedFile",
    "SpeakerMix",
    "SpeakerMixError",
    "load_speaker_mix",
    "parse_speaker_mix",
]
