"""svc_train: PyTorch networks, feature extraction and training for so-vits-svc 4.1 models."""

__all__: list[str] = []

from svc_train.encoders import load_content_encoder  # noqa: E402

__all__.append("load_content_encoder")

from svc_train.checkpoint import load_generator  # noqa: E402

__all__.append("load_generator")
