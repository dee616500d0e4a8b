"""Pitch-network checkpoints: weights shipped inside a pip wheel (read with
`svc_train.safe_pickle.read_weights_only`: tensors and plain data only)."""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
from pathlib import Path


def bundled_weights(relative: str, *, release: str, network: str, sha256: str | None, hint: str) -> Path:
    """Path of ``relative`` (``"<package>/assets/<file>"``) inside an installed wheel, found
    without importing the package (its import may need torchaudio).

    ``release`` (``"torchfcpe 0.0.4"``) names the wheel in the sha256 error; ``sha256=None``
    skips the check. A missing file is a FileNotFoundError ending in ``hint``.
    """
    package = relative.split("/", 1)[0]
    candidates: list[Path] = []
    spec = importlib.util.find_spec(package)
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(p).parent / relative for p in spec.submodule_search_locations]
    try:
        for entry in importlib.metadata.files(package) or []:
            if str(entry).replace("\\", "/") == relative:
                candidates.append(Path(entry.locate()))
    except importlib.metadata.PackageNotFoundError:
        pass
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise FileNotFoundError(f"{network} weights `{relative}` not found. {hint}")
    if sha256 is not None:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != sha256:
            raise ValueError(f"{path}: sha256 {digest} is not {release}'s {sha256}. {hint}")
    return path


def require_checkpoint_file(path: Path, network: str, package: str, hint: str) -> None:
    """A clear FileNotFoundError where an explicit checkpoint path is not a file."""
    if not path.is_file():
        raise FileNotFoundError(
            f"{network} checkpoint not found: {path}. Leave --checkpoint out to use the {package} wheel's "
            f"weights. {hint}"
        )
