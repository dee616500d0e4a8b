"""svc_train: PyTorch networks, feature extraction and training for so-vits-svc 4.1 models.

`load_content_encoder` and `load_generator` load torch on first use (PEP 562), so that
`svc-train --help` and the torch-free modules (cli, data.config_builder) import quickly.
"""

from __future__ import annotations

from svc_runtime.lazy import lazy_getattr

_EXPORTS = {
    "load_content_encoder": "svc_train.encoders",
    "load_generator": "svc_train.checkpoint",
}

__all__ = list(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
