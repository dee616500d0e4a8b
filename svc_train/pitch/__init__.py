"""Neural pitch networks (RMVPE, FCPE, CREPE) with exportable mel front ends, and ``extract_f0``."""

from svc_train.pitch.crepe import Crepe, CrepeFromAudio, load_crepe
from svc_train.pitch.extract import NeuralPitchExtractor, extract_f0
from svc_train.pitch.fcpe import FCPE, FcpeFromAudio, load_fcpe
from svc_train.pitch.mel import LogMelSpectrogram, MelConfig
from svc_train.pitch.rmvpe import RMVPE, RmvpeFromAudio, load_rmvpe

__all__ = [
    "Crepe",
    "CrepeFromAudio",
    "FCPE",
    "FcpeFromAudio",
    "LogMelSpectrogram",
    "MelConfig",
    "NeuralPitchExtractor",
    "RMVPE",
    "RmvpeFromAudio",
    "extract_f0",
    "load_crepe",
    "load_fcpe",
    "load_rmvpe",
]
