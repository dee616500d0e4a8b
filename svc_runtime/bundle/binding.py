"""Device-resident I/O for the conversion graph: one upload and one download per chunk.

`ConversionBinding` runs a bundle's conversion graph (`converter`, `converter_f0` or `synthesis`) through
ONNX Runtime I/O binding on preallocated `OrtValue`s on the provider's device ("cpu" or "cuda"; the
logic is the same, so the CPU tests exercise it). Per window batch shape it keeps a *plan*: every graph
input and output buffer, reused while the shape stays the same. Per chunk:

- host -> device: ONE copy, a `packed` [B, L] float32 row per window with the window's audio (and
  `f0_in` / `units` / `audio_in` where the graph has them) plus the places of its noise in the shared
  normal table and `state_frame`; a tiny graph (`noise_graph`) unpacks it on the device and draws the
  noise there (the 4 MiB table went up once), straight into the conversion graph's input buffers.
  Without this the noise alone (hop * 9 floats per frame, ~1.6 MB per second at 44.1 kHz) would cross
  the bus every chunk, as it changes every chunk: it is a function of the absolute frame.
- the NSF phase stays on the device: the run's `phase_out` buffer is the next run's `phase_in` (two
  buffers, swapped); the host sends a phase only to start a stream (`carry_phase=False`).
- device -> host: ONE copy, the audio; `f0`, `uv` and `phase_out` only when asked (`fetch`).
- speaker weights and the controls (`f0_scale`, `noise_scale`, cluster centres, ...) go up when they
  change, not per chunk.

`counter` counts every copy either way (and its bytes), so tests can assert the transfers per chunk.
With `ProviderConfig(provider="cuda", cuda_graph=True)` ONNX Runtime captures each run as a CUDA graph
and replays it: every buffer address is fixed per plan, and the two phase parities are two captured
graphs (run option `gpu_graph_id`), since swapping phase buffers changes the addresses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnxruntime as ort

from svc_runtime.bundle.noise_graph import FeederLayout, device_table
from svc_runtime.bundle.sessions import OrtSession, ProviderConfig
from svc_runtime.pipeline.noise import KIND_PRIOR, KIND_SINE, stream_key
from svc_runtime.pipeline.window import CONVERSION_ROLES, Controls, Window, window_feeds
from svc_runtime.signal.nsf_phase import PHASE_LIMBS

CHUNK_FLOATS = ("wav16k", "units", "f0_in", "audio_in")
"""Conversion-graph inputs that change with every window and travel in the packed upload."""
DEVICE_DRAWN = ("noise_prior", "sine_noise", "state_frame")
"""Inputs the feeder graph writes on the device."""
OUTPUTS = ("audio", "f0", "uv")


@dataclass
class TransferCounter:
    """Host <-> device copies made by a binding (and their bytes)."""

    host_to_device: int = 0
    device_to_host: int = 0
    host_to_device_bytes: int = 0
    device_to_host_bytes: int = 0

    def up(self, nbytes: int) -> None:
        self.host_to_device += 1
        self.host_to_device_bytes += int(nbytes)

    def down(self, nbytes: int) -> None:
        self.device_to_host += 1
        self.device_to_host_bytes += int(nbytes)

    def copy(self) -> "TransferCounter":
        return TransferCounter(self.host_to_device, self.device_to_host, self.host_to_device_bytes,
                               self.device_to_host_bytes)

    def since(self, before: "TransferCounter") -> "TransferCounter":
        return TransferCounter(self.host_to_device - before.host_to_device, self.device_to_host - before.device_to_host,
                               self.host_to_device_bytes - before.host_to_device_bytes,
                               self.device_to_host_bytes - before.device_to_host_bytes)


@dataclass
class BoundOutputs:
    """One run's outputs on the host: audio [B, (T - decode_from)*hop]; f0, uv [B, T] and phase_out [B, 3, H]
    (int32 limbs) when fetched; transfers: the copies this run made."""

    audio: np.ndarray
    f0: np.ndarray | None
    uv: np.ndarray | None
    phase_out: np.ndarray | None
    transfers: TransferCounter = field(default_factory=TransferCounter)


@dataclass
class _Plan:
    """Buffers, bindings and the feeder of one window batch shape."""

    key: tuple
    number: int
    layout: FeederLayout
    packed_host: np.ndarray
    packed: ort.OrtValue
    inputs: dict[str, ort.OrtValue]
    outputs: dict[str, ort.OrtValue]
    phases: list[ort.OrtValue]
    feeder: ort.InferenceSession
    feeder_binding: ort.IOBinding
    bindings: list[ort.IOBinding]
    statics: dict[str, np.ndarray] = field(default_factory=dict)
    parity: int = 0
    phase_ready: bool = False


class ConversionBinding:
    """Runs one conversion graph of `bundle` with device-resident inputs, outputs and NSF phase.

    config: where it runs (default the bundle's provider); with `cuda_graph=True` a session of its own
    is opened with CUDA-graph capture. The bundle's precision picks the graph (fp16 / fp32).
    """

    def __init__(self, bundle, role: str, config: ProviderConfig | None = None) -> None:
        if role not in CONVERSION_ROLES:
            raise ValueError(f"{role!r} is not a conversion graph role ({', '.join(CONVERSION_ROLES)})")
        config = config or bundle.provider
        if config.provider not in ("cpu", "cuda"):
            raise ValueError(f"device-resident binding runs on provider cpu or cuda, got {config.provider!r}")
        self.bundle, self.role, self.config = bundle, role, config
        self.device = "cuda" if config.on_gpu else "cpu"
        self.counter = TransferCounter()
        chosen = bundle.manifest.graph_for(role, bundle.precision)
        if chosen is None:
            raise ValueError(f"{bundle.path}: the bundle has no {role} graph (export it with svc-export)")
        name, entry = chosen
        self.entry = entry
        if config == bundle.provider:
            bundle.open(role)
        shared = bundle.sessions.get(role) if config == bundle.provider else None
        session = shared if isinstance(shared, OrtSession) else OrtSession(
            name, bundle.path / entry.file, config, half=entry.precision == "fp16")
        self.session = session.ort_session
        self.input_names = tuple(i.name for i in self.session.get_inputs())
        self.output_names = tuple(o.name for o in self.session.get_outputs())
        self._table = self._upload(device_table())
        self._plans: dict[tuple, _Plan] = {}

    # ------------------------------------------------------------------ buffers

    def _empty(self, shape: tuple[int, ...], dtype) -> ort.OrtValue:
        return ort.OrtValue.ortvalue_from_shape_and_type(list(shape), dtype, self.device, self.config.device_id)

    def _upload(self, value: np.ndarray) -> ort.OrtValue:
        value = np.ascontiguousarray(value)
        buffer = self._empty(value.shape, value.dtype)
        buffer.update_inplace(value)
        self.counter.up(value.nbytes)
        return buffer

    def _put(self, buffer: ort.OrtValue, value: np.ndarray) -> None:
        buffer.update_inplace(np.ascontiguousarray(value))
        self.counter.up(value.nbytes)

    def _get(self, buffer: ort.OrtValue) -> np.ndarray:
        value = buffer.numpy()
        if self.device == "cpu":  # a view of the buffer the next run overwrites
            value = value.copy()
        self.counter.down(value.nbytes)
        return value

    def _run_options(self, graph_id: int) -> ort.RunOptions | None:
        if not self.config.cuda_graph:
            return None
        options = ort.RunOptions()
        options.add_run_config_entry("gpu_graph_id", str(graph_id))
        return options

    # ------------------------------------------------------------------ plans

    def _plan(self, feeds: dict[str, np.ndarray], batch: int, frames: int, decode_from: int = 0) -> _Plan:
        floats = tuple((n, tuple(feeds[n].shape[1:])) for n in CHUNK_FLOATS if n in feeds)
        key = (batch, frames, floats, decode_from)
        plan = self._plans.get(key)
        if plan is not None:
            return plan
        m = self.bundle.manifest.model
        layout = FeederLayout(batch=batch, floats=floats, frames=frames, channels=m.inter_channels,
                              samples=frames * m.hop_length, harmonics=m.n_harmonics)
        inputs = {n: self._empty(v.shape, v.dtype) for n, v in feeds.items() if n not in ("phase_in", *DEVICE_DRAWN)}
        inputs["noise_prior"] = self._empty((batch, m.inter_channels, frames), np.float32)
        inputs["sine_noise"] = self._empty((batch, frames * m.hop_length, m.n_harmonics), np.float32)
        inputs["state_frame"] = self._empty((batch,), np.int64)
        outputs = {
            "audio": self._empty((batch, 1, (frames - decode_from) * m.hop_length), np.float32),
            "f0": self._empty((batch, frames), np.float32),
            "uv": self._empty((batch, frames), np.float32),
        }
        phases = [self._empty((batch, PHASE_LIMBS, m.n_harmonics), np.int32) for _ in range(2)]  # int32 limbs
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep Range unfolded
        options.log_severity_level = 3
        options.intra_op_num_threads = 1  # a few gathers: a thread pool of its own would only compete on the CPU
        for entry, value in self.config.session_config_entries().items():
            options.add_session_config_entry(entry, value)
        feeder = ort.InferenceSession(layout.model(), options, providers=self.config.ort_providers())
        packed_host = np.zeros((batch, layout.width), np.float32)
        packed = self._empty(packed_host.shape, np.float32)
        feeder_binding = feeder.io_binding()
        feeder_binding.bind_ortvalue_input("packed", packed)
        feeder_binding.bind_ortvalue_input("table", self._table)
        for out in feeder.get_outputs():
            feeder_binding.bind_ortvalue_output(out.name, inputs[out.name])
        bindings = []
        for parity in range(2):
            binding = self.session.io_binding()
            for name in self.input_names:
                binding.bind_ortvalue_input(name, phases[parity] if name == "phase_in" else inputs[name])
            for name in self.output_names:
                binding.bind_ortvalue_output(name, phases[1 - parity] if name == "phase_out" else outputs[name])
            bindings.append(binding)
        plan = _Plan(key=key, number=len(self._plans), layout=layout, packed_host=packed_host, packed=packed,
                     inputs=inputs, outputs=outputs, phases=phases, feeder=feeder, feeder_binding=feeder_binding,
                     bindings=bindings)
        self._plans[key] = plan
        return plan

    # ------------------------------------------------------------------ runs

    def run(self, windows: list[Window], controls: Controls, *, carry_phase: bool = False,
            fetch: tuple[str, ...] = ("audio",)) -> BoundOutputs:
        """One run over `windows` (equal `batch_key`). carry_phase: start from the phase the previous run of
        this shape left on the device (the windows' `phase_in` is not read); else upload the windows' phase.
        fetch: outputs to copy back ("audio", "f0", "uv", "phase_out")."""
        unknown = sorted(set(fetch) - {*OUTPUTS, "phase_out"})
        if unknown or "audio" not in fetch:
            raise ValueError(f"fetch must include 'audio' and only name {OUTPUTS + ('phase_out',)}, got {fetch}")
        before = self.counter.copy()
        feeds = self._host_feeds(windows, controls)
        plan = self._plan(feeds, len(windows), windows[0].frames, windows[0].decode_from)
        for b, w in enumerate(windows):
            plan.layout.fill(plan.packed_host[b], feeds_row(feeds, b), stream_key(w.noise.seed, w.noise.stream, KIND_PRIOR),
                             stream_key(w.noise.seed, w.noise.stream, KIND_SINE), w.start, w.state_frame)
        self._put(plan.packed, plan.packed_host)
        for name, value in feeds.items():  # speaker and controls: only when they change
            if name in CHUNK_FLOATS or name in DEVICE_DRAWN or name == "phase_in":
                continue
            if name not in plan.statics or not np.array_equal(plan.statics[name], value):
                self._put(plan.inputs[name], value)
                plan.statics[name] = value.copy()
        if not carry_phase:
            self._put(plan.phases[plan.parity], feeds["phase_in"])
        elif not plan.phase_ready:
            raise ValueError("carry_phase: no earlier run of this window shape left a phase on the device")
        plan.feeder.run_with_iobinding(plan.feeder_binding, self._run_options(0))
        self.session.run_with_iobinding(plan.bindings[plan.parity], self._run_options(1 + 2 * plan.number + plan.parity))
        plan.parity, plan.phase_ready = 1 - plan.parity, True
        got = {name: self._get(plan.outputs[name]) for name in OUTPUTS if name in fetch}
        phase = self._get(plan.phases[plan.parity]) if "phase_out" in fetch else None
        return BoundOutputs(audio=got["audio"][:, 0], f0=got.get("f0"), uv=got.get("uv"), phase_out=phase,
                            transfers=self.counter.since(before))

    def _host_feeds(self, windows: list[Window], controls: Controls) -> dict[str, np.ndarray]:
        """The graph's feeds as `window_feeds` builds them, without drawing the noise on the host."""
        keys = {w.batch_key() for w in windows}
        if len(keys) != 1:
            raise ValueError(f"windows of one batch must have equal lengths, got {sorted(keys)}")
        shells = [_NoNoise.wrap(w) for w in windows]
        return window_feeds(self.role, shells, controls, self.input_names)


def feeds_row(feeds: dict[str, np.ndarray], b: int) -> dict[str, np.ndarray]:
    """Window `b`'s chunk inputs."""
    return {name: feeds[name][b] for name in CHUNK_FLOATS if name in feeds}


class _NoNoise:
    """Stands in for a window's `NoiseStream` in `window_feeds`: empty arrays, so the host never draws (or
    allocates) the noise the device draws itself."""

    def __init__(self, noise) -> None:
        self.noise = noise

    @staticmethod
    def wrap(w: Window) -> Window:
        return Window(wav16k=w.wav16k, start=w.start, frames=w.frames, noise=_NoNoise(w.noise), phase_in=w.phase_in,
                      state_frame=w.state_frame, speaker=w.speaker, f0=w.f0, units=w.units, audio=w.audio,
                      decode_from=w.decode_from)

    def prior(self, start: int, end: int) -> np.ndarray:
        return np.zeros((self.noise.inter_channels, 0), np.float32)

    def sine(self, start: int, end: int) -> np.ndarray:
        return np.zeros((0, self.noise.harmonics), np.float32)
