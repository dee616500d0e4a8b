"""svc_train: PyTorch networks, feature extraction and training for so-vits-svc 4.1 models."""

__all__: list[str] = []
