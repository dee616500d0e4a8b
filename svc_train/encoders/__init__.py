"""Speech (content) encoders of so-vits-svc 4.1: HuBERT/ContentVec (fairseq + Hugging Face forms),
hubert-soft, chinese-hubert-large, WavLM Base+, Whisper-PPG (medium / large-v2), DPHuBERT, and the
"-onnx" variants (an ONNX file run by ONNX Runtime). `ENCODER_SPECS` is the registry of names;
`load_content_encoder(name, path)` loads one as so-vits-svc names it."""

from svc_train.encoders.content_encoder import (
    ENCODER_SPECS,
    ContentEncoder,
    EncoderSpec,
    is_onnx_file,
    load_content_encoder,
    same_units,
)
from svc_train.encoders.hubert import HubertConfig, HubertEncoder
from svc_train.encoders.layouts import CheckpointLayoutError

__all__ = [
    "ENCODER_SPECS",
    "CheckpointLayoutError",
    "ContentEncoder",
    "EncoderSpec",
    "HubertConfig",
    "HubertEncoder",
    "is_onnx_file",
    "load_content_encoder",
    "same_units",
]
