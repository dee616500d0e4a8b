"""`Bundle`: a loaded bundle folder, its validated manifest and one session per graph.

All inputs and outputs are numpy arrays. Shapes: B batch, T frames of the
generator grid (`hop_length` samples at `sampling_rate`), S speakers, H = 9 NSF
sine components.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from svc_runtime.bundle.manifest import PRECISIONS, GraphEntry, Manifest, ManifestError
from svc_runtime.bundle.sessions import GraphSession, ProviderConfig, open_session
from svc_runtime.bundle.validate import validate_graphs
from svc_runtime.signal.nsf_phase import frame_start_phases
from svc_runtime.vocabulary import DEFAULT_SEED

NOISE_KEYS = ("prior", "rand_ini", "sine")
CORE_ROLES = ("converter", "converter_f0", "synthesis", "generator", "f0_predictor", "speech_encoder", "pitch")
"""Graph roles a `Bundle` runs; each opens its session on first use (or at load when `roles` names it)."""
DIFFUSION_ROLES = ("diffusion_condition", "diffusion_denoiser", "vocoder")
"""Shallow diffusion and the enhancer's vocoder: opened on first use by `Bundle.diffusion` / `Bundle.enhancer`."""
DIFFUSION_EXPORT_HINT = "svc-export ... --vocoder nsf_hifigan/model --diffusion-checkpoint model_*.pt --diffusion-config diffusion.yaml"
ENHANCER_EXPORT_HINT = "svc-export ... --vocoder nsf_hifigan/model"


class BundleIntegrityError(ManifestError):
    """A file the manifest lists is missing or its sha256 does not match."""


def sha256_of(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify_files(bundle_dir: Path, manifest: Manifest) -> None:
    """Check that every file of the manifest exists and matches its sha256; name the first that does not."""
    for what, name, expected in manifest.files():
        path = bundle_dir / name
        if not path.is_file():
            raise BundleIntegrityError(f"{path}: {what} listed in manifest.json is missing; re-export the bundle")
        actual = sha256_of(path)
        if actual != expected:
            raise BundleIntegrityError(
                f"{path}: {what} is corrupted or was modified (sha256 {actual[:16]}..., manifest says "
                f"{expected[:16]}...); re-export the bundle or restore the file"
            )


def _check_int8(bundle_dir: Path, manifest: Manifest, config: ProviderConfig) -> None:
    """int8 runs on ONNX Runtime's CPU kernels only, and only with int8 graphs in the bundle."""
    if config.provider != "cpu":
        raise ValueError(
            f"precision int8 runs on the CPU provider only (ONNX Runtime's int8 CPU kernels), not {config.provider}; "
            "on a GPU use precision fp16 or fp32 (TensorRT: its engines choose their own precision)"
        )
    if not any(g.precision == "int8" for g in manifest.graphs.values()):
        raise ValueError(f"{bundle_dir}: the bundle has no int8 graphs; re-export it with svc-export ... --int8")


@dataclass(frozen=True)
class GeneratorNoise:
    """The generator's random terms, explicit (DESIGN.md `noise` mapping).

    prior: [B, inter_channels, T] standard normal; rand_ini: [B, H] initial phases in
    cycles (element 0 ignored); sine: [B, T*hop, H] standard normal.
    """

    prior: np.ndarray
    rand_ini: np.ndarray
    sine: np.ndarray


class Bundle:
    """A bundle folder loaded for inference (numpy + ONNX Runtime, never torch)."""

    def __init__(
        self,
        path: Path,
        manifest: Manifest,
        sessions: dict[str, GraphSession],
        provider: ProviderConfig | None = None,
        precision: str = "fp32",
    ) -> None:
        self.path = path
        self.manifest = manifest
        self.sessions = sessions
        self.provider = provider or ProviderConfig()
        self.precision = precision
        self._diffusion = None
        self._enhancer = None
        self._opening = threading.RLock()

    # ----------------------------------------------------------------- loading

    @classmethod
    def load(
        cls,
        path: str | Path,
        provider: str | ProviderConfig = "cpu",
        *,
        precision: str | None = None,
        verify: bool = True,
        roles: tuple[str, ...] = (),
    ) -> "Bundle":
        """Validate `path/manifest.json` and every file's sha256; sessions open on first use of their graph.

        provider: "cpu", "cuda", "tensorrt" or a `ProviderConfig`. precision: "fp32", "fp16"
        or "int8" graphs (default: fp16 on a GPU when the bundle has them, fp32 otherwise);
        roles without a graph of that precision run fp32. int8 (`svc-export --int8`) is for
        the CPU provider only and needs at least one int8 graph in the bundle.
        roles: graphs to open now rather than on first use (those the bundle lacks are skipped), e.g. ("generator",).
        """
        bundle_dir = Path(path)
        if not bundle_dir.is_dir():
            raise FileNotFoundError(f"{bundle_dir}: bundle folder not found (svc-export writes one)")
        config = provider if isinstance(provider, ProviderConfig) else ProviderConfig(provider=provider)
        manifest = Manifest.read(bundle_dir)
        if verify:
            verify_files(bundle_dir, manifest)
        validate_graphs(bundle_dir, manifest)  # graph files vs manifest entries and model sizes
        if precision is None:
            precision = "fp16" if config.on_gpu else "fp32"
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if precision == "int8":
            _check_int8(bundle_dir, manifest, config)
        if config.provider in ("cpu", "cuda", "tensorrt"):
            config.ort_providers()  # an unavailable execution provider is an error now, not at the first window
        unknown = sorted(set(roles) - set(CORE_ROLES))
        if unknown:
            raise ValueError(
                f"roles {unknown} are not runnable here; choose from {list(CORE_ROLES)} "
                "(the diffusion graphs open through Bundle.diffusion() / Bundle.enhancer())"
            )
        bundle = cls(bundle_dir, manifest, {}, config, precision)
        for role in roles:
            bundle._open_role(role)
        return bundle

    def _open_role(self, role: str) -> GraphSession | None:
        """Open (once) the session of `role`'s graph; None when the bundle has no such graph."""
        with self._opening:
            if role not in self.sessions:
                session = self._open_new(role)
                if session is None:
                    return None
                self.sessions[role] = session
            return self.sessions[role]

    def _open_new(self, role: str) -> GraphSession | None:
        chosen = self.manifest.graph_for(role, self.precision)
        if chosen is None:
            return None
        name, graph = chosen
        engine = None
        if self.provider.provider == "tensorrt":
            # an engine of this role, whichever graph it was built from (TensorRT picks its own precision)
            built = [e for e in self.manifest.engines.values() if self.manifest.graphs[e.graph].role == role]
            engine = self.path / built[0].file if built else None
        return open_session(name, self.path / graph.file, self.provider, engine=engine, half=graph.precision == "fp16")

    # ----------------------------------------------------------------- properties

    @property
    def sampling_rate(self) -> int:
        return self.manifest.model.sampling_rate

    @property
    def hop_length(self) -> int:
        return self.manifest.model.hop_length

    @property
    def speakers(self) -> dict[str, int]:
        return dict(self.manifest.model.speakers)

    @property
    def n_speakers(self) -> int:
        return self.manifest.model.n_speakers

    def has_graph(self, role: str) -> bool:
        """True when the bundle holds a graph of `role` (at this precision or fp32)."""
        return role in self.sessions or self.manifest.graph_for(role, self.precision) is not None

    def graph_entry(self, role: str) -> GraphEntry:
        session = self._session(role)
        return self.manifest.graphs[session.name]

    def open(self, *roles: str) -> None:
        """Open the sessions of `roles` now (a broken graph fails here, not at the first window)."""
        for role in roles:
            self._session(role)

    def run(self, role: str, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One run of `role`'s graph: named inputs -> named outputs (the graph's manifest entry lists both)."""
        return self._session(role).run(dict(feeds))

    # ----------------------------------------------------------------- shallow diffusion and enhancer

    @property
    def has_diffusion(self) -> bool:
        """True when the bundle holds a shallow-diffusion model (condition + denoiser + vocoder graphs)."""
        section = self.manifest.diffusion or {}
        roles = {g.role for g in self.manifest.graphs.values()}
        return "timesteps" in section and set(DIFFUSION_ROLES) <= roles

    @property
    def has_enhancer(self) -> bool:
        """True when the bundle holds the NSF-HiFiGAN vocoder graph (enough for enhancement)."""
        section = self.manifest.diffusion or {}
        return "vocoder" in section and any(g.role == "vocoder" for g in self.manifest.graphs.values())

    def diffusion(self):
        """The bundle's `svc_runtime.diffusion.ShallowDiffusion` over its own sessions (opened on first call)."""
        if self._diffusion is None:
            from svc_runtime.diffusion import ShallowDiffusion

            if not self.has_diffusion:
                raise ValueError(
                    f"{self.path}: the bundle has no shallow-diffusion model (needed by shallow diffusion and "
                    f"only-diffusion); re-export it with {DIFFUSION_EXPORT_HINT}"
                )
            spec = self.manifest.diffusion_spec()  # checked when the manifest was read
            sessions = [self._open_role(role) for role in DIFFUSION_ROLES]
            self._diffusion = ShallowDiffusion(spec, *sessions)
        return self._diffusion

    def enhancer(self):
        """The bundle's `svc_runtime.diffusion.Enhancer` (NSF-HiFiGAN vocoder graph, opened on first call)."""
        if self._enhancer is None:
            from svc_runtime.diffusion import Enhancer

            if not self.has_enhancer:
                raise ValueError(
                    f"{self.path}: the bundle has no NSF-HiFiGAN vocoder graph (needed by the enhancer); "
                    f"re-export it with {ENHANCER_EXPORT_HINT}"
                )
            spec = self.manifest.diffusion_spec().vocoder
            self._enhancer = Enhancer.from_session(spec, self._open_role("vocoder"))
        return self._enhancer

    def _session(self, role: str) -> GraphSession:
        session = self._open_role(role) if role in CORE_ROLES else self.sessions.get(role)
        if session is None:
            raise ValueError(f"{self.path}: the bundle has no {role} graph (export it with svc-export)")
        return session

    # ----------------------------------------------------------------- speakers and noise

    def speaker_id(self, speaker: int | str) -> int:
        """A speaker's id from its name or id, checked against the model."""
        if isinstance(speaker, str):
            if speaker not in self.manifest.model.speakers:
                raise ValueError(f"unknown speaker {speaker!r}; the bundle has {sorted(self.speakers)}")
            return self.manifest.model.speakers[speaker]
        sid = int(speaker)
        if not 0 <= sid < self.n_speakers:
            raise ValueError(f"speaker id {sid} out of range: the model has {self.n_speakers} speakers")
        return sid

    def one_hot_speakers(self, sid: np.ndarray | int | str | list, batch: int, frames: int) -> np.ndarray:
        """Speaker weights [B, T, S] float32 selecting one speaker per batch item.

        sid: an id or name for every item, or [B] ids.
        """
        ids = np.atleast_1d(np.asarray(sid, dtype=object)).reshape(-1)
        if ids.size == 1 and batch > 1:
            ids = np.repeat(ids, batch)
        if ids.size != batch:
            raise ValueError(f"sid has {ids.size} entries for a batch of {batch}")
        weights = np.zeros((batch, frames, self.n_speakers), dtype=np.float32)
        for b, speaker in enumerate(ids):
            weights[b, :, self.speaker_id(speaker if isinstance(speaker, str) else int(speaker))] = 1.0
        return weights

    def draw_noise(self, batch: int, frames: int, seed: int = DEFAULT_SEED) -> GeneratorNoise:
        """The generator's random terms drawn from a seeded numpy Generator (reproducible)."""
        rng = np.random.default_rng(seed)
        model = self.manifest.model
        prior = rng.standard_normal((batch, model.inter_channels, frames), dtype=np.float32)
        rand_ini = rng.random((batch, model.n_harmonics), dtype=np.float32)
        rand_ini[:, 0] = 0.0
        sine = rng.standard_normal((batch, frames * model.hop_length, model.n_harmonics), dtype=np.float32)
        return GeneratorNoise(prior=prior, rand_ini=rand_ini, sine=sine)

    def _noise(self, noise: Mapping[str, np.ndarray] | GeneratorNoise | None, batch: int, frames: int, seed: int):
        if noise is None:
            return self.draw_noise(batch, frames, seed)
        if isinstance(noise, GeneratorNoise):
            return noise
        missing = [k for k in NOISE_KEYS if k not in noise]
        if missing:
            raise ValueError(f"noise mapping lacks {missing}; it needs {list(NOISE_KEYS)}")
        return GeneratorNoise(**{k: np.asarray(noise[k], dtype=np.float32) for k in NOISE_KEYS})

    def source_phases(
        self,
        f0: np.ndarray,
        *,
        rand_ini: np.ndarray | None = None,
        initial_phase: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """NSF start phases per frame: (phase [B, T, H] float32 cycles, end_phase [B, H] float64).

        Pass `end_phase` as the next chunk's `initial_phase` to continue a stream.
        """
        model = self.manifest.model
        phases, end = frame_start_phases(
            np.asarray(f0, dtype=np.float32),
            model.hop_length,
            source_sr=model.nsf_source_sampling_rate,
            rand_ini=rand_ini,
            initial_phase=initial_phase,
            harmonics=model.n_harmonics,
        )
        return phases.astype(np.float32), end

    # ----------------------------------------------------------------- generator

    def generate(
        self,
        c: np.ndarray,
        f0: np.ndarray,
        uv: np.ndarray,
        sid: np.ndarray | int | str,
        vol: np.ndarray | None = None,
        noise_scale: float = 0.35,
        noise: Mapping[str, np.ndarray] | GeneratorNoise | None = None,
        *,
        seed: int = DEFAULT_SEED,
    ) -> np.ndarray:
        """Audio [B, 1, T*hop] float32 for one speaker per item (as `infer` of the torch model).

        c: [B, ssl_dim, T] units; f0: [B, T] Hz (0 = unvoiced); uv: [B, T] 1 = voiced;
        sid: speaker id/name per item; vol: [B, T] (models with vol_embedding);
        noise: {"prior", "rand_ini", "sine"} or None (drawn with `seed`).
        """
        c, f0, uv = self._frames_inputs(c, f0, uv)
        weights = self.one_hot_speakers(sid, c.shape[0], c.shape[2])
        return self.generate_mix(c, f0, uv, weights, vol, noise_scale, noise, seed=seed)

    def generate_mix(
        self,
        c: np.ndarray,
        f0: np.ndarray,
        uv: np.ndarray,
        speaker_weights: np.ndarray,
        vol: np.ndarray | None = None,
        noise_scale: float = 0.35,
        noise: Mapping[str, np.ndarray] | GeneratorNoise | None = None,
        *,
        seed: int = DEFAULT_SEED,
        initial_phase: np.ndarray | None = None,
    ) -> np.ndarray:
        """Audio [B, 1, T*hop] with per-frame speaker weights [B, T, S] (so-vits-svc's speaker mix).

        initial_phase: [B, H] carried NSF phase (a previous chunk's end phase); when
        given, noise["rand_ini"] is not used.
        """
        audio, _ = self.generate_chunk(
            c, f0, uv, speaker_weights, vol, noise_scale, noise, seed=seed, initial_phase=initial_phase
        )
        return audio

    def generate_chunk(
        self,
        c: np.ndarray,
        f0: np.ndarray,
        uv: np.ndarray,
        speaker_weights: np.ndarray,
        vol: np.ndarray | None = None,
        noise_scale: float = 0.35,
        noise: Mapping[str, np.ndarray] | GeneratorNoise | None = None,
        *,
        seed: int = DEFAULT_SEED,
        initial_phase: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """As `generate_mix`, also returning the NSF end phase [B, H] to carry into the next chunk."""
        c, f0, uv = self._frames_inputs(c, f0, uv)
        batch, _, frames = c.shape
        drawn = self._noise(noise, batch, frames, seed)
        if initial_phase is None:
            phase, end_phase = self.source_phases(f0, rand_ini=drawn.rand_ini)
        else:
            phase, end_phase = self.source_phases(f0, initial_phase=initial_phase)
        audio = self.synthesize(
            c, f0, uv, speaker_weights, phase=phase, prior=drawn.prior, sine=drawn.sine,
            noise_scale=noise_scale, vol=vol,
        )
        return audio, end_phase

    def synthesize(
        self,
        c: np.ndarray,
        f0: np.ndarray,
        uv: np.ndarray,
        speaker_weights: np.ndarray,
        *,
        phase: np.ndarray,
        prior: np.ndarray,
        sine: np.ndarray,
        noise_scale: float,
        vol: np.ndarray | None = None,
    ) -> np.ndarray:
        """One run of the generator graph with every input explicit; audio [B, 1, T*hop].

        phase: [B, T, H] NSF start phase per frame (cycles, see `source_phases`);
        prior: [B, inter_channels, T]; sine: [B, T*hop, H].
        """
        c, f0, uv = self._frames_inputs(c, f0, uv)
        batch, _, frames = c.shape
        model = self.manifest.model
        expected = {
            "speaker": (np.asarray(speaker_weights), (batch, frames, model.n_speakers)),
            "phase": (np.asarray(phase), (batch, frames, model.n_harmonics)),
            "noise_prior": (np.asarray(prior), (batch, model.inter_channels, frames)),
            "sine_noise": (np.asarray(sine), (batch, frames * model.hop_length, model.n_harmonics)),
        }
        for name, (value, shape) in expected.items():
            if value.shape != shape:
                raise ValueError(f"{name} must have shape {list(shape)}, got {list(value.shape)}")
        feeds = {
            "c": c,
            "f0": f0,
            "uv": uv,
            "speaker": expected["speaker"][0],
            "noise_prior": expected["noise_prior"][0],
            "noise_scale": np.array([noise_scale], dtype=np.float32),
            "phase": expected["phase"][0],
            "sine_noise": expected["sine_noise"][0],
        }
        if model.vol_embedding:
            feeds["vol"] = self._vol(vol, batch, frames)
        return self._session("generator").run(feeds)["audio"]

    def predict_f0(
        self,
        c: np.ndarray,
        f0: np.ndarray,
        uv: np.ndarray,
        speaker_weights: np.ndarray,
        vol: np.ndarray | None = None,
    ) -> np.ndarray:
        """The model's automatic F0 prediction, f0 [B, T] Hz, as `infer(..., predict_f0=True)`.

        Feed the result to `generate` in place of the input f0 (uv stays as it was).
        """
        session = self._session("f0_predictor")
        c, f0, uv = self._frames_inputs(c, f0, uv)
        batch, _, frames = c.shape
        weights = np.asarray(speaker_weights, dtype=np.float32)
        if weights.shape != (batch, frames, self.n_speakers):
            raise ValueError(f"speaker weights must be [B, T, S] = [{batch}, {frames}, {self.n_speakers}], "
                             f"got {list(weights.shape)}")
        feeds = {"c": c, "f0": f0, "uv": uv, "speaker": weights}
        if self.manifest.model.vol_embedding:
            feeds["vol"] = self._vol(vol, batch, frames)
        return session.run(feeds)["f0_pred"]

    # ----------------------------------------------------------------- encoder and pitch

    def encode_units(self, wav16k: np.ndarray) -> np.ndarray:
        """Content units [B, dim, frames] of a 16 kHz waveform [B, N] (or [N])."""
        wav = np.asarray(wav16k, dtype=np.float32)
        wav = wav[None] if wav.ndim == 1 else wav
        return self._session("speech_encoder").run({"wav": wav})["units"]

    def pitch_salience(self, wav: np.ndarray) -> np.ndarray:
        """The pitch network's salience [B, frames, bins] of a waveform [B, N] (or [N]) at pitch.sampling_rate.

        Decode it with `svc_runtime.pitch` using the manifest's `pitch.threshold`.
        """
        wav = np.asarray(wav, dtype=np.float32)
        wav = wav[None] if wav.ndim == 1 else wav
        return self._session("pitch").run({"wav": wav})["salience"]

    # ----------------------------------------------------------------- checks

    def _frames_inputs(self, c, f0, uv) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        c = np.asarray(c, dtype=np.float32)
        f0 = np.asarray(f0, dtype=np.float32)
        uv = np.asarray(uv, dtype=np.float32)
        ssl_dim = self.manifest.model.ssl_dim
        if c.ndim != 3 or c.shape[1] != ssl_dim:
            raise ValueError(f"c must be [B, {ssl_dim}, T] content units, got shape {list(c.shape)}")
        batch, _, frames = c.shape
        for name, value in (("f0", f0), ("uv", uv)):
            if value.shape != (batch, frames):
                raise ValueError(f"{name} must be [B, T] = [{batch}, {frames}], got shape {list(value.shape)}")
        return c, f0, uv

    def _vol(self, vol: np.ndarray | None, batch: int, frames: int) -> np.ndarray:
        if vol is None:
            raise ValueError("this model embeds volume (vol_embedding): pass vol [B, T]")
        vol = np.asarray(vol, dtype=np.float32)
        if vol.shape != (batch, frames):
            raise ValueError(f"vol must be [B, T] = [{batch}, {frames}], got shape {list(vol.shape)}")
        return vol
