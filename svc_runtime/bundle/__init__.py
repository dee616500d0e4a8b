"""The bundle loader: manifest schema, sessions, and `Bundle` (numpy + ONNX Runtime only)."""

from svc_runtime.bundle.bundle import Bundle, BundleIntegrityError, GeneratorNoise
from svc_runtime.bundle.manifest import Manifest, ManifestError
from svc_runtime.bundle.sessions import ProviderConfig, ProviderUnavailableError

__all__ = [
    "Bundle",
    "BundleIntegrityError",
    "GeneratorNoise",
    "Manifest",
    "ManifestError",
    "ProviderConfig",
    "ProviderUnavailableError",
]
