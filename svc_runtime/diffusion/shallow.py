"""Shallow diffusion and NSF-HiFiGAN rendering over exported graphs (numpy + ONNX Runtime).

:class:`ShallowDiffusion` mirrors so-vits-svc 4.1's inference paths:

- shallow diffusion: the generator's audio -> vocoder log-mel -> noised to step
  ``k_step - 1`` -> the sampler loop over the denoiser graph -> vocoder graph;
- only diffusion: pure noise at the last step -> sampler -> vocoder (models trained on
  every step, ``k_step_max == timesteps``);
- the vocoder alone (:meth:`ShallowDiffusion.vocode`), used by the enhancer.

Every random term is explicit or drawn from a seeded ``numpy.random.Generator``: the
start noise [B, 1, M, T], the sine phases (accumulated per frame in float64 by
:mod:`svc_runtime.signal.nsf_phase`) and the source noise [B, T*hop, 9].
Sessions are anything with ONNX Runtime's ``run(output_names, feeds)``; plain
``onnxruntime.InferenceSession`` objects also get I/O binding for the sampler loop
(the condition is bound once as an ``OrtValue``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from svc_runtime.audio.resample import resample
from svc_runtime.diffusion.mel import log_mel
from svc_runtime.diffusion.samplers import sample as run_sampler
from svc_runtime.diffusion.schedule import NoiseSchedule, denormalize_mel, normalize_mel
from svc_runtime.diffusion.spec import SPEC_FILE, DiffusionSpec, DiffusionSpecError, VocoderSpec
from svc_runtime.signal.nsf_phase import frame_start_phases


class Session(Protocol):
    """An ``onnxruntime.InferenceSession`` (``run(names, feeds) -> list``) or a bundle
    ``GraphSession`` (``run(feeds) -> {name: array}``); :func:`run_graph` calls either."""

    def run(self, *args: Any) -> Any: ...


def run_graph(session: Session, output: str, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """One output of one graph call, whichever of the two session interfaces ``session`` has."""
    if hasattr(session, "get_inputs"):  # a plain onnxruntime.InferenceSession
        return session.run([output], feeds)[0]
    return session.run(feeds)[output]


def open_session(path: Path, threads: int = 0, providers: list[str] | None = None) -> Session:
    """A plain ONNX Runtime session (CPU unless ``providers`` says otherwise)."""
    import onnxruntime as ort

    if not path.is_file():
        raise FileNotFoundError(f"graph {path} is missing; re-export the diffusion folder with svc-export")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), sess_options=options, providers=providers or ["CPUExecutionProvider"])


def read_spec(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / SPEC_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; export the diffusion model or vocoder with svc-export first")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DiffusionSpecError(f"{path} is not valid JSON: {exc}") from exc


class Vocoder:
    """The NSF-HiFiGAN graph: mel [B, M, T] + f0 [B, T] -> audio [B, 1, T*hop]."""

    def __init__(self, spec: VocoderSpec, session: Session) -> None:
        self.spec = spec
        self.session = session

    def mel(self, audio: np.ndarray, sample_rate: int, keyshift: float = 0.0) -> np.ndarray:
        """audio [N] or [B, N] at ``sample_rate`` -> log-mel [B, M, frames] at the vocoder's rate."""
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim == 1:
            audio = audio[None]
        if sample_rate != self.spec.sampling_rate:
            audio = np.stack([resample(a, sample_rate, self.spec.sampling_rate) for a in audio])
        return log_mel(audio, self.spec.mel, keyshift=keyshift)

    def __call__(
        self,
        mel: np.ndarray,
        f0: np.ndarray,
        phase: np.ndarray | None = None,
        sine_noise: np.ndarray | None = None,
        rng: np.random.Generator | None = None,
    ) -> np.ndarray:
        """phase: [B, T, 9] cycles (default: float64 accumulation from 0); sine_noise:
        [B, T*hop, 9] standard normal (default: drawn from ``rng``, zeros without one)."""
        mel = np.ascontiguousarray(mel, dtype=np.float32)
        b, _, frames = mel.shape
        f0 = np.ascontiguousarray(np.asarray(f0, dtype=np.float32)[:, :frames])
        if f0.shape != (b, frames):
            raise ValueError(f"f0 must cover the mel's {frames} frames for {b} items, got shape {f0.shape}")
        hop, harmonics = self.spec.hop_size, self.spec.harmonics
        if phase is None:
            phase, _ = frame_start_phases(f0, hop, source_sr=self.spec.sampling_rate, harmonics=harmonics)
        if sine_noise is None:
            shape = (b, frames * hop, harmonics)
            sine_noise = rng.standard_normal(shape, dtype=np.float32) if rng is not None else np.zeros(shape, np.float32)
        feeds = {
            "mel": mel,
            "f0": f0,
            "phase": np.ascontiguousarray(phase, dtype=np.float32),
            "sine_noise": np.ascontiguousarray(sine_noise, dtype=np.float32),
        }
        return run_graph(self.session, "audio", feeds)


class _Denoiser:
    """Calls the denoiser graph for one fixed condition.

    A plain ``InferenceSession`` gets I/O binding with the condition bound once as an
    ``OrtValue``; a bundle ``GraphSession`` does its own binding.
    """

    def __init__(self, session: Session, cond: np.ndarray) -> None:
        self.session = session
        self.batch = cond.shape[0]
        self.cond = np.ascontiguousarray(cond, dtype=np.float32)
        self.binding = None
        if hasattr(session, "io_binding") and hasattr(session, "get_inputs"):
            import onnxruntime as ort

            self.binding = session.io_binding()
            self._cond_value = ort.OrtValue.ortvalue_from_numpy(self.cond)
            self.binding.bind_ortvalue_input("cond", self._cond_value)

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        steps = np.full((self.batch,), t, dtype=np.float32)
        if self.binding is None:
            return run_graph(self.session, "eps", {"x": x, "t": steps, "cond": self.cond})
        self.binding.bind_cpu_input("x", x)
        self.binding.bind_cpu_input("t", steps)
        self.binding.bind_output("eps")
        self.session.run_with_iobinding(self.binding)
        return self.binding.copy_outputs_to_cpu()[0]


class ShallowDiffusion:
    """Unit2Mel diffusion + NSF-HiFiGAN over three graphs (see module docstring)."""

    def __init__(self, spec: DiffusionSpec, condition: Session, denoiser: Session, vocoder: Session) -> None:
        self.spec = spec
        self.schedule = NoiseSchedule(spec.timesteps, spec.max_beta)
        self.condition = condition
        self.denoiser = denoiser
        self.vocoder = Vocoder(spec.vocoder, vocoder)

    @classmethod
    def load(cls, folder: str | Path, providers: list[str] | None = None, threads: int = 0) -> ShallowDiffusion:
        """Open ``folder`` written by ``export_diffusion`` (``diffusion.json`` + three graphs)."""
        folder = Path(folder)
        raw = read_spec(folder)
        if "timesteps" not in raw:
            raise DiffusionSpecError(
                f"{folder / SPEC_FILE} describes only a vocoder (enhancer); export a diffusion model for shallow diffusion"
            )
        spec = DiffusionSpec.from_dict(raw, str(folder / SPEC_FILE))
        return cls(
            spec,
            open_session(folder / spec.condition_graph, threads, providers),
            open_session(folder / spec.denoiser_graph, threads, providers),
            open_session(folder / spec.vocoder.graph, threads, providers),
        )

    # -- inputs ------------------------------------------------------------------------------
    def speaker_weights(self, sid: np.ndarray | int | None, frames: int, batch: int) -> np.ndarray:
        """One-hot per-frame speaker weights [B, T, S] from ids [B] (0-based)."""
        n = self.spec.n_spk
        ids = np.zeros(batch, dtype=np.int64) if sid is None else np.broadcast_to(np.asarray(sid, dtype=np.int64), (batch,))
        if ids.min() < 0 or ids.max() >= n:
            raise ValueError(f"speaker id must be in [0, {n}), got {ids.tolist()}")
        weights = np.zeros((batch, frames, n), dtype=np.float32)
        weights[np.arange(batch), :, ids] = 1.0
        return weights

    def cond(self, units: np.ndarray, f0: np.ndarray, volume: np.ndarray, speaker: np.ndarray) -> np.ndarray:
        """units [B, C, T]; f0, volume [B, T]; speaker [B, T, S] weights -> cond [B, hidden, T]."""
        units = np.ascontiguousarray(units, dtype=np.float32)
        b, c, frames = units.shape
        if c != self.spec.unit_channels:
            raise ValueError(f"units have {c} channels but the diffusion model takes {self.spec.unit_channels}")
        for name, value in (("f0", f0), ("volume", volume)):
            if np.shape(value) != (b, frames):
                raise ValueError(f"{name} must be [B, T] = [{b}, {frames}], got {np.shape(value)}")
        feeds = {
            "c": units,
            "f0": np.ascontiguousarray(f0, dtype=np.float32),
            "vol": np.ascontiguousarray(volume, dtype=np.float32),
            "speaker": np.ascontiguousarray(speaker, dtype=np.float32),
        }
        return run_graph(self.condition, "cond", feeds)

    # -- rendering ---------------------------------------------------------------------------
    def render_mel(
        self,
        units: np.ndarray,
        f0: np.ndarray,
        volume: np.ndarray,
        sid: np.ndarray | int | None = None,
        gt_mel: np.ndarray | None = None,
        k_step: int | None = None,
        method: str | None = None,
        speedup: int | None = None,
        noise: np.ndarray | None = None,
        seed: int = 0,
        speaker: np.ndarray | None = None,
    ) -> np.ndarray:
        """The diffusion model's log-mel [B, M, T].

        gt_mel [B, M, T]: start from it at ``k_step`` (shallow); None: from pure noise
        (only for models trained on every step). noise: [B, 1, M, T] start noise
        (default: standard normal from ``seed``). speaker: [B, T, S] weights overriding ``sid``.
        """
        spec = self.spec
        units = np.asarray(units, dtype=np.float32)
        b, _, frames = units.shape
        weights = speaker if speaker is not None else self.speaker_weights(sid, frames, b)
        cond = self.cond(units, f0, volume, weights)
        shape = (b, 1, spec.vocoder.num_mels, frames)
        if noise is None:
            noise = np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)
        elif noise.shape != shape:
            raise ValueError(f"noise must be {list(shape)}, got {list(noise.shape)}")
        method = method or spec.method
        speedup = speedup or spec.speedup
        if speedup < 2:
            raise ValueError("the runtime samplers need speedup >= 2 (full DDPM runs only in svc_train)")
        if gt_mel is None:
            if not spec.can_run_alone:
                raise ValueError(
                    f"this diffusion model was trained for shallow diffusion only (k_step_max={spec.k_step_max} < "
                    f"timesteps={spec.timesteps}); use --shallow-diffusion with a generator"
                )
            k_step = spec.timesteps
            x = noise
        else:
            k_step = spec.k_step_max if k_step is None else int(k_step)
            self.schedule.check_k_step(k_step, spec.k_step_max)
            gt_mel = fit_frames(np.asarray(gt_mel, dtype=np.float32), frames)
            x_start = normalize_mel(gt_mel, spec.spec_min, spec.spec_max)[:, None]  # [B, 1, M, T]
            x = self.schedule.q_sample(x_start, k_step - 1, noise).astype(np.float32)
        x = run_sampler(_Denoiser(self.denoiser, cond), x, self.schedule, k_step, method, speedup)
        return denormalize_mel(x[:, 0], spec.spec_min, spec.spec_max).astype(np.float32)

    def shallow(
        self,
        audio: np.ndarray,
        units: np.ndarray,
        f0: np.ndarray,
        volume: np.ndarray,
        sid: np.ndarray | int | None = None,
        k_step: int = 100,
        method: str | None = None,
        speedup: int | None = None,
        seed: int = 0,
        noise: np.ndarray | None = None,
        sine_noise: np.ndarray | None = None,
        speaker: np.ndarray | None = None,
        phase: np.ndarray | None = None,
    ) -> np.ndarray:
        """Refine the generator's ``audio`` [B, 1, T*hop] (or [B, N]) at ``spec.sampling_rate``.

        units [B, C, T], f0 and volume [B, T] on the same frame grid; phase [B, T, 9] sine
        start phases (cycles) to carry across chunks (``frame_start_phases(..., initial_phase=)``,
        default: from 0). Returns audio [B, 1, T*hop] from the vocoder.
        """
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim == 3:
            audio = audio[:, 0]
        gt_mel = self.vocoder.mel(audio, self.spec.sampling_rate)
        mel = self.render_mel(units, f0, volume, sid, gt_mel, k_step, method, speedup, noise, seed, speaker)
        rng = np.random.default_rng(seed + 1) if sine_noise is None else None
        return self.vocoder(mel, f0, phase=phase, sine_noise=sine_noise, rng=rng)

    def only_diffusion(
        self, units, f0, volume, sid=None, method=None, speedup=None, seed: int = 0, speaker=None, phase=None
    ) -> np.ndarray:
        """Render from noise without a generator (``--only-diffusion``); audio [B, 1, T*hop]."""
        mel = self.render_mel(units, f0, volume, sid, None, None, method, speedup, None, seed, speaker)
        return self.vocoder(mel, f0, phase=phase, rng=np.random.default_rng(seed + 1))


def fit_frames(mel: np.ndarray, frames: int) -> np.ndarray:
    """Cut or edge-pad a mel [B, M, T'] to ``frames`` (resampled audio can be a frame off)."""
    have = mel.shape[-1]
    if have >= frames:
        return mel[..., :frames]
    return np.concatenate([mel, np.repeat(mel[..., -1:], frames - have, axis=-1)], axis=-1)


__all__ = ["ShallowDiffusion", "Vocoder", "fit_frames", "open_session", "read_spec", "run_graph"]
