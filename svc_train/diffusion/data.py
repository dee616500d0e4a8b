"""Training data for the diffusion model: cached features plus vocoder mels, cropped per item.

Units and f0 come from ``<wav>.features.npz`` (``svc-train features``) or, for data
prepared by so-vits-svc, ``<wav>.soft.pt`` units [1, C, T_u] and ``<wav>.f0.npy`` [2, T]
(f0 Hz, uv). The diffusion caches beside the file use so-vits-svc 4.1's names:
``<wav>.mel.npy`` [T, M] vocoder log-mel, ``<wav>.vol.npy`` [T] volume, and for pitch
augmentation ``<wav>.aug_mel.npy`` + ``<wav>.aug_vol.npy``. so-vits-svc stores the
augmented mel as an object array ``(mel, keyshift)``; this package writes a plain
float array and the shift in ``<wav>.aug_shift.npy``, and reads both (the object form
through an allow-list unpickler that builds only numpy arrays and numbers).

:func:`prepare_mels` fills the mel/volume/augmentation files from the audio with the
vocoder's own mel front end; units and f0 come from the feature-extraction step.
"""

from __future__ import annotations

import io
import pickle
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import torch
from torch.utils.data import Dataset

from svc_runtime.audio.resample import resample
from svc_runtime.signal.units import align_units
from svc_runtime.signal.volume import volume_envelope
from svc_train.diffusion.config import DiffusionConfig
from svc_train.diffusion.vocoder_mel import VocoderMel
from svc_train.safe_pickle import read_weights_only

MAX_KEYSHIFT = 5.0  # semitones, so-vits-svc's augmentation range


class DiffusionDataError(ValueError):
    """Missing or malformed cached features; says which file and how to produce it."""


def feature_path(wav: Path, suffix: str) -> Path:
    return wav.with_name(wav.name + suffix)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Builds numpy arrays, dtypes and scalars only; anything else in the pickle is refused."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a feature file")


def load_npy(path: Path) -> np.ndarray | tuple:
    """Load a .npy; object arrays go through :class:`_NumpyOnlyUnpickler`, never plain pickle."""
    if not path.is_file():
        raise DiffusionDataError(f"{path} is missing; run the feature extraction / `svc-train diffusion` mel step")
    with path.open("rb") as handle:
        version = np.lib.format.read_magic(handle)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        _shape, _fortran, dtype = read_header(handle)
        if dtype.hasobject:
            try:
                items = _NumpyOnlyUnpickler(io.BytesIO(handle.read())).load()
            except (pickle.UnpicklingError, EOFError, AttributeError) as exc:
                raise DiffusionDataError(f"{path}: unsupported object array ({exc})") from exc
            return tuple(items.tolist()) if isinstance(items, np.ndarray) else items
    return np.load(path, allow_pickle=False)


@dataclass
class CachedItem:
    name: str
    units: torch.Tensor  # [T, C]
    f0: torch.Tensor  # [T, 1]
    volume: torch.Tensor  # [T, 1]
    mel: torch.Tensor  # [T, M]
    aug_mel: torch.Tensor | None
    aug_volume: torch.Tensor | None
    aug_shift: float
    spk_id: int

    @property
    def frames(self) -> int:
        return self.mel.shape[0]


def read_filelist(path: str | Path) -> list[Path]:
    path = Path(path)
    if not path.is_file():
        raise DiffusionDataError(f"file list {path} does not exist; build it with `svc-train config`")
    wavs = [Path(line.strip()) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not wavs:
        raise DiffusionDataError(f"file list {path} is empty")
    return wavs


def speaker_of(wav: Path, config: DiffusionConfig) -> int:
    """Speaker id from the parent folder name (so-vits-svc's convention); 0 for one-speaker models."""
    if config.model.n_spk <= 1:
        return 0
    name = wav.parent.name
    if name not in config.spk:
        raise DiffusionDataError(f"{wav}: speaker folder {name!r} is not in the config's spk map {sorted(config.spk)}")
    return config.spk[name]


FEATURES_NPZ = ".features.npz"
"""The feature cache of ``svc-train features`` (units [dim, U], f0 [T], uv, volume, spec, meta)."""


def read_units_f0(wav: Path) -> tuple[torch.Tensor, np.ndarray]:
    """Units [C, U] and interpolated f0 [T] Hz from ``<wav>.features.npz`` or so-vits-svc's
    ``<wav>.soft.pt`` + ``<wav>.f0.npy``."""
    npz = feature_path(wav, FEATURES_NPZ)
    if npz.is_file():
        try:
            with np.load(npz, allow_pickle=False) as cache:
                return torch.from_numpy(np.array(cache["units"], dtype=np.float32)), np.array(cache["f0"], dtype=np.float32)
        except (KeyError, ValueError, OSError) as exc:
            raise DiffusionDataError(f"{npz}: unreadable feature cache ({exc}); re-run `svc-train features`") from exc
    f0_uv = load_npy(feature_path(wav, ".f0.npy"))
    f0 = np.asarray(f0_uv[0] if isinstance(f0_uv, tuple) or np.ndim(f0_uv) == 2 else f0_uv, dtype=np.float32)
    units_path = feature_path(wav, ".soft.pt")
    if not units_path.is_file():
        raise DiffusionDataError(f"{units_path} and {npz} are missing; extract features for {wav} first (`svc-train features`)")
    units = read_weights_only(units_path, "a units tensor", DiffusionDataError, "re-run `svc-train features`")
    if not isinstance(units, torch.Tensor):
        raise DiffusionDataError(f"{units_path}: expected a units tensor, found {type(units).__name__}")
    units = units.float()
    return (units[0] if units.dim() == 3 else units), f0


def load_item(wav: Path, config: DiffusionConfig) -> CachedItem:
    units, f0 = read_units_f0(wav)
    mel = np.asarray(load_npy(feature_path(wav, ".mel.npy")), dtype=np.float32)
    frames = len(f0)
    if mel.ndim != 2 or abs(mel.shape[0] - frames) > 2:
        raise DiffusionDataError(f"{feature_path(wav, '.mel.npy')}: shape {mel.shape} does not fit {frames} f0 frames")
    frames = min(frames, mel.shape[0])
    volume = np.asarray(load_npy(feature_path(wav, ".vol.npy")), dtype=np.float32)
    if units.shape[0] != config.data.encoder_out_channels:
        raise DiffusionDataError(
            f"{wav}: units have {units.shape[0]} channels, config data.encoder_out_channels is {config.data.encoder_out_channels}"
        )
    units = torch.from_numpy(align_units(units.numpy(), len(f0), config.data.unit_interpolate_mode)).T[:frames]
    aug_mel = aug_volume = None
    aug_shift = 0.0
    aug_path = feature_path(wav, ".aug_mel.npy")
    if aug_path.is_file():
        loaded = load_npy(aug_path)
        if isinstance(loaded, tuple):
            aug_mel, aug_shift = np.asarray(loaded[0], dtype=np.float32), float(loaded[1])
        else:
            aug_mel = np.asarray(loaded, dtype=np.float32)
            aug_shift = float(load_npy(feature_path(wav, ".aug_shift.npy")))
        aug_volume = np.asarray(load_npy(feature_path(wav, ".aug_vol.npy")), dtype=np.float32)

    def frames_of(values: np.ndarray) -> torch.Tensor:
        values = torch.from_numpy(np.ascontiguousarray(values[:frames]))
        return values if values.dim() == 2 else values[:, None]

    return CachedItem(
        name=str(wav), units=units.contiguous(), f0=frames_of(f0), volume=frames_of(volume), mel=frames_of(mel),
        aug_mel=None if aug_mel is None else frames_of(aug_mel),
        aug_volume=None if aug_volume is None else frames_of(aug_volume),
        aug_shift=aug_shift, spk_id=speaker_of(wav, config),
    )


class DiffusionDataset(Dataset):
    """Random crops (torch's RNG, which DataLoader seeds per worker) of ``data.duration`` seconds (or whole clips with ``whole=True``).

    Items: mel [T, M], f0 [T, 1] Hz, volume [T, 1], units [T, C], spk_id [1] long,
    aug_shift [1, 1] semitones (0 when the plain mel was drawn).
    """

    def __init__(self, filelist: str | Path, config: DiffusionConfig, whole: bool = False, augment: bool = True):
        self.whole = whole
        self.augment = augment
        frame_s = config.data.block_size / config.data.sampling_rate
        self.crop = max(1, int(config.data.duration / frame_s))
        items = [load_item(wav, config) for wav in read_filelist(filelist)]
        self.items = items if whole else [item for item in items if item.frames >= self.crop]
        if not self.items:
            longest = max(item.frames for item in items) * frame_s
            raise DiffusionDataError(
                f"no clip in {filelist} is as long as data.duration = {config.data.duration} s (longest {longest:.2f} s); "
                "lower data.duration"
            )

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = self.items[index]
        start, length = 0, item.frames
        if not self.whole:
            start = int(torch.randint(0, item.frames - self.crop + 1, ()))
            length = self.crop
        window = slice(start, start + length)
        use_aug = self.augment and item.aug_mel is not None and bool(torch.rand(()) < 0.5)
        shift = item.aug_shift if use_aug else 0.0
        mel = item.aug_mel if use_aug else item.mel
        volume = item.aug_volume if use_aug else item.volume
        return {
            "mel": mel[window].float(),
            "f0": item.f0[window] * 2 ** (shift / 12),
            "volume": volume[window].float(),
            "units": item.units[window].float(),
            "spk_id": torch.tensor([item.spk_id], dtype=torch.long),
            "aug_shift": torch.tensor([[shift]], dtype=torch.float32),
        }


def prepare_mels(
    filelist: str | Path, config: DiffusionConfig, mel: VocoderMel, seed: int = 1234, overwrite: bool = False
) -> int:
    """Write mel, volume and pitch-augmented mel/volume caches for every wav of ``filelist``.

    Audio is read with soundfile, mixed to mono and resampled (soxr) to the vocoder's
    rate. Returns how many wavs were processed (those with every file present are skipped).
    """
    rng = random.Random(seed)
    hop = config.data.block_size
    if mel.spec.sampling_rate != config.data.sampling_rate or mel.spec.hop_size != hop:
        raise DiffusionDataError(
            f"vocoder grid {mel.spec.sampling_rate} Hz / hop {mel.spec.hop_size} differs from data.sampling_rate "
            f"{config.data.sampling_rate} / data.block_size {hop}; use the vocoder the config names"
        )
    done = 0
    for wav in read_filelist(filelist):
        targets = [feature_path(wav, s) for s in (".mel.npy", ".vol.npy", ".aug_mel.npy", ".aug_vol.npy", ".aug_shift.npy")]
        if not overwrite and all(t.is_file() for t in targets):
            continue
        try:
            audio, sr = soundfile.read(str(wav), dtype="float32", always_2d=True)
        except (RuntimeError, soundfile.LibsndfileError) as exc:
            raise DiffusionDataError(f"{wav}: cannot read audio ({exc})") from exc
        audio = resample(audio.mean(axis=1), sr, config.data.sampling_rate)
        tensor = torch.from_numpy(audio)[None]
        np.save(targets[0], mel(tensor)[0].T.numpy().astype(np.float32))
        np.save(targets[1], volume_envelope(audio, hop))
        keyshift = rng.uniform(-MAX_KEYSHIFT, MAX_KEYSHIFT)
        np.save(targets[2], mel(tensor, keyshift=keyshift)[0].T.numpy().astype(np.float32))
        peak = float(np.max(np.abs(audio))) + 1e-5
        log10_shift = rng.uniform(-1.0, min(1.0, float(np.log10(1.0 / peak))))
        np.save(targets[3], volume_envelope(audio * (10**log10_shift), hop))
        np.save(targets[4], np.float32(keyshift))
        done += 1
    return done


__all__ = [
    "CachedItem",
    "DiffusionDataError",
    "DiffusionDataset",
    "FEATURES_NPZ",
    "feature_path",
    "load_item",
    "load_npy",
    "prepare_mels",
    "read_filelist",
]
