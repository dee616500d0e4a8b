"""One run of a conversion graph over a batch of windows: what every host prepares and reads back.

A window is frames [start, start + frames) of one stream (a voiced slice of a file, or a live
stream) with its 16 kHz audio. The host gives each window its own noise (by absolute frame, so
overlapping windows see the same numbers), the carried NSF phase, and reads back the audio, the F0
the generator used, the voicing and the phase to carry (docs/bundle.md, "The conversion graph").
Graph roles: `converter` (pitch inside), `converter_f0` (F0 from the host), `synthesis` (units and
F0 from the host, for retrieval between the `speech_encoder` graph and it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from svc_runtime.pipeline.noise import NoiseStream
from svc_runtime.signal.nsf_phase import PHASE_MAX_FRAMES
from svc_runtime.vocabulary import ENCODER_SAMPLE_RATE

CONVERSION_ROLES = ("converter", "converter_f0", "synthesis")


def samples_at(frame: int, hop: int, sampling_rate: int, rate: int = ENCODER_SAMPLE_RATE) -> int:
    """The sample at `rate` where model frame `frame` starts: round(frame * hop * rate / sampling_rate)."""
    return (frame * hop * rate + sampling_rate // 2) // sampling_rate


@dataclass
class Window:
    """One window of one stream, ready for the graph.

    wav16k: [N16] audio at 16 kHz covering the window; start / frames: its frame range in the stream;
    phase_in: [3, H] int32 NSF phase before its first frame (limbs of cycles * 2^40, `nsf_phase.PHASE_LIMBS`);
    state_frame: the frame (0..frames) whose start phase to return; speaker: [frames, S] weights.
    Role-dependent: f0 [frames] raw Hz (converter_f0, synthesis), units [D, Tu] on the encoder grid
    (synthesis), audio [frames * hop] at the model rate (models with vol_embedding).
    """

    wav16k: np.ndarray
    start: int
    frames: int
    noise: NoiseStream
    phase_in: np.ndarray
    state_frame: int
    speaker: np.ndarray
    f0: np.ndarray | None = None
    units: np.ndarray | None = None
    audio: np.ndarray | None = None
    decode_from: int = 0

    def batch_key(self) -> tuple[int, int, int, int]:
        """Windows with equal keys stack into one batch."""
        return (self.frames, self.wav16k.shape[0], -1 if self.units is None else self.units.shape[1],
                self.decode_from)


@dataclass
class WindowResult:
    """audio [(frames - decode_from) * hop] (frames [decode_from, frames)), f0 [frames] Hz used, uv [frames]
    (1 = voiced), phase_out [3, H] int32 limbs."""

    audio: np.ndarray
    f0: np.ndarray
    uv: np.ndarray
    phase_out: np.ndarray


@dataclass(frozen=True)
class Controls:
    """Per-conversion settings fed to every window: pitch factor 2^(transpose/12) (float32 of the double),
    prior noise scale, k-means centres [K, D] of the speaker and their blend ratio, automatic F0 on/off."""

    f0_scale: float
    noise_scale: float
    cluster_centres: np.ndarray
    cluster_ratio: float = 0.0
    auto_f0: bool = False

    @classmethod
    def create(cls, transpose: float, noise_scale: float, dim: int, centres: np.ndarray | None = None,
               cluster_ratio: float = 0.0, auto_f0: bool = False) -> "Controls":
        unused = centres is None or cluster_ratio == 0.0
        return cls(
            f0_scale=float(np.float32(2.0 ** (transpose / 12.0))),
            noise_scale=float(noise_scale),
            cluster_centres=np.zeros((1, dim), np.float32) if unused else np.ascontiguousarray(centres, np.float32),
            cluster_ratio=0.0 if unused else float(cluster_ratio),
            auto_f0=auto_f0,
        )


def speaker_index(bundle, speaker: str | int | None) -> int:
    """The speaker id of `speaker` (a name or an id); None picks the bundle's only speaker (else ValueError)."""
    if speaker is None:
        if len(bundle.speakers) != 1:
            raise ValueError(f"choose a speaker: the bundle has {sorted(bundle.speakers)}")
        speaker = next(iter(bundle.speakers))
    return bundle.speaker_id(speaker)


def pitch_in_graph(bundle, f0_method: str | None) -> bool:
    """True when the bundle's `converter` graph tracks the pitch itself for `f0_method` (None: the bundle's own
    pitch network); else the host computes F0 and runs `converter_f0`."""
    pitch = bundle.manifest.pitch
    return pitch is not None and f0_method in (None, pitch.method) and bundle.has_graph("converter")


def window_feeds(role: str, windows: list[Window], controls: Controls, graph_inputs: tuple[str, ...]) -> dict:
    """The graph's feeds for a batch of windows with equal `batch_key` (inputs the graph lacks are left out)."""
    batch, frames = len(windows), windows[0].frames
    first = windows[0]
    if frames > PHASE_MAX_FRAMES:
        raise ValueError(f"a window of {frames} frames is longer than the conversion graph's phase accumulator "
                         f"allows ({PHASE_MAX_FRAMES} frames); use shorter windows (max_window_seconds)")
    feeds: dict[str, np.ndarray] = {
        "speaker": np.stack([w.speaker for w in windows]).astype(np.float32, copy=False),
        "f0_scale": np.full(batch, controls.f0_scale, np.float32),
        "noise_scale": np.array([controls.noise_scale], np.float32),
        "noise_prior": np.stack([w.noise.prior(w.start, w.start + frames) for w in windows]),
        "sine_noise": np.stack([w.noise.sine(w.start, w.start + frames) for w in windows]),
        "phase_in": np.stack([w.phase_in for w in windows]).astype(np.int32, copy=False),
        "state_frame": np.array([w.state_frame for w in windows], np.int64),
        "cluster_centres": controls.cluster_centres,
        "cluster_ratio": np.array([controls.cluster_ratio], np.float32),
        "auto_f0": np.array([1.0 if controls.auto_f0 else 0.0], np.float32),
        "decode_from": np.array([first.decode_from], np.int64),
    }
    if role == "synthesis":
        feeds["units"] = np.stack([w.units for w in windows]).astype(np.float32, copy=False)
    else:
        feeds["wav16k"] = np.stack([w.wav16k for w in windows]).astype(np.float32, copy=False)
    if role != "converter":
        feeds["f0_in"] = np.stack([w.f0 for w in windows]).astype(np.float32, copy=False)
    if "audio_in" in graph_inputs:
        if first.audio is None:
            raise ValueError("this model embeds volume (vol_embedding): windows need their model-rate audio")
        feeds["audio_in"] = np.stack([w.audio for w in windows]).astype(np.float32, copy=False)
    if first.decode_from and "decode_from" not in graph_inputs:
        raise ValueError("this bundle's conversion graph always decodes the whole window (no decode_from input); "
                         "re-export it with svc-export")
    if controls.auto_f0 and "auto_f0" not in graph_inputs:
        raise ValueError("automatic F0 prediction needs a model trained with use_automatic_f0_prediction")
    return {name: value for name, value in feeds.items() if name in graph_inputs}


def run_windows(bundle, role: str, windows: list[Window], controls: Controls) -> list[WindowResult]:
    """Run the bundle's `role` graph once over `windows` (equal `batch_key`); one result per window."""
    if role not in CONVERSION_ROLES:
        raise ValueError(f"{role!r} is not a conversion graph role ({', '.join(CONVERSION_ROLES)})")
    keys = {w.batch_key() for w in windows}
    if len(keys) != 1:
        raise ValueError(f"windows of one batch must have equal lengths, got {sorted(keys)}")
    entry = bundle.graph_entry(role)
    feeds = window_feeds(role, windows, controls, entry.input_names())
    out = bundle.run(role, feeds)
    return [
        WindowResult(audio=out["audio"][b, 0], f0=out["f0"][b], uv=out["uv"][b], phase_out=out["phase_out"][b])
        for b in range(len(windows))
    ]
