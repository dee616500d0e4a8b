"""Speech (content) encoders: HuBERT/ContentVec (fairseq + Hugging Face forms), hubert-soft,
chinese-hubert-large, WavLM Base+; `load_content_encoder(name, path)` as so-vits-svc names them."""

from svc_train.encoders.content_encoder import ENCODER_SPECS, ContentEncoder, EncoderSpec, load_content_encoder
from svc_train.encoders.hubert import HubertConfig, HubertEncoder
from svc_train.encoders.layouts import CheckpointLayoutError

__all__ = [
    "ENCODER_SPECS",
    "CheckpointLayoutError",
    "ContentEncoder",
    "EncoderSpec",
    "HubertConfig",
    "HubertEncoder",
    "load_content_encoder",
]
