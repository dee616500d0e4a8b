"""Running one graph: ONNX Runtime sessions (CPU / CUDA / TensorRT execution providers),
prebuilt TensorRT engines and OpenVINO's CPU plugin (`openvino_session`), behind one
`run(feeds) -> outputs` surface.

Provider choice is plain data (`ProviderConfig`); an unavailable provider is a
clear error, never a silent fallback. On CUDA the inputs and outputs go through
ONNX Runtime I/O binding with device buffers that are reused while shapes stay
the same (streaming calls the same shapes over and over).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import onnxruntime as ort

from svc_runtime.errors import EXIT_USAGE, SvcError, graph_run, loading_graph

PROVIDERS = ("cpu", "cuda", "tensorrt", "openvino")
GPU_PROVIDERS = ("cuda", "tensorrt")
INFERENCE_PRECISIONS = ("fp32", "bf16")
"""OpenVINO's compute precision for fp32 graphs (bf16 needs AVX512-BF16 or AMX)."""
PERFORMANCE_HINTS = ("latency", "throughput")
_ORT_NAMES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}
_NUMPY_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
}

log = logging.getLogger(__name__)


class ProviderUnavailableError(SvcError, RuntimeError):
    """The requested execution provider is not in this onnxruntime build (or tensorrt is missing)."""

    exit_code = EXIT_USAGE


@dataclass(frozen=True)
class ProviderConfig:
    """Where graphs run.

    provider: "cpu" (ONNX Runtime), "cuda" (onnxruntime-gpu), "tensorrt" (prebuilt engines from
        the bundle when it has them, else ONNX Runtime's TensorRT execution provider) or
        "openvino" (OpenVINO's CPU plugin, the optional `openvino` package).
    device_id: CUDA device index.
    intra_op_threads: CPU threads per session (0: the backend's default, one per core).
    allow_spinning: let ONNX Runtime's idle intra-/inter-op threads spin-wait for work. None:
        off on the CPU (spinning threads steal time on a shared or busy CPU; one thread
        without spinning was as fast as two spinning ones on a loaded 2-core machine), ONNX
        Runtime's default (on) on the GPU providers.
    cpu_mem_arena: keep ONNX Runtime's CPU memory arena. Off by default: the arena keeps every
        tensor block of the largest run for the life of the session (micro model, one 32 s
        chunk window: peak 1264 -> 873 MiB, resident after the run 1264 -> 383 MiB without it;
        conversion and streaming times unchanged within the noise).
    trt_fp16: let ONNX Runtime's TensorRT provider build fp16 kernels.
    trt_cache_dir: engine and timing cache folder of ONNX Runtime's TensorRT provider.
    trt_workspace_bytes: TensorRT builder workspace.
    inference_precision: OpenVINO only: "fp32" (default) or "bf16" compute for fp32 graphs.
    performance_hint: OpenVINO only: "latency" (one stream, default) or "throughput".
    ov_cache_dir: OpenVINO's compiled-model cache (None: `openvino_session.default_cache_dir()`,
        "": no cache).
    cuda_graph: CUDA only: ONNX Runtime captures each fixed-shape run as a CUDA graph and replays it
        (CUDA provider option `enable_cuda_graph`). Needs device-bound inputs and outputs at fixed
        addresses: run such sessions through `svc_runtime.bundle.binding.ConversionBinding`.
    """

    provider: str = "cpu"
    device_id: int = 0
    intra_op_threads: int = 0
    allow_spinning: bool | None = None
    cpu_mem_arena: bool = False
    trt_fp16: bool = False
    trt_cache_dir: str | None = None
    trt_workspace_bytes: int = 2 << 30
    inference_precision: str = "fp32"
    performance_hint: str = "latency"
    ov_cache_dir: str | None = None
    cuda_graph: bool = False

    def __post_init__(self) -> None:
        if self.provider not in PROVIDERS:
            raise ValueError(f"provider must be one of {', '.join(PROVIDERS)}; got {self.provider!r}")
        if self.device_id < 0 or self.intra_op_threads < 0:
            raise ValueError("device_id and intra_op_threads must be >= 0")
        if self.inference_precision not in INFERENCE_PRECISIONS:
            raise ValueError(f"inference_precision must be one of {', '.join(INFERENCE_PRECISIONS)}; "
                             f"got {self.inference_precision!r}")
        if self.inference_precision != "fp32" and self.provider != "openvino":
            raise ValueError(f"inference_precision {self.inference_precision} needs provider 'openvino'")
        if self.cuda_graph and self.provider != "cuda":
            raise ValueError(f"cuda_graph needs provider 'cuda' (CUDA-graph capture), got {self.provider!r}")
        if self.performance_hint not in PERFORMANCE_HINTS:
            raise ValueError(f"performance_hint must be one of {', '.join(PERFORMANCE_HINTS)}; "
                             f"got {self.performance_hint!r}")

    @property
    def on_gpu(self) -> bool:
        return self.provider in GPU_PROVIDERS

    @property
    def spinning(self) -> bool:
        """Whether idle ONNX Runtime threads spin: `allow_spinning`, or its default for the provider."""
        return self.on_gpu if self.allow_spinning is None else self.allow_spinning

    def session_config_entries(self) -> dict[str, str]:
        """ONNX Runtime session config entries (`SessionOptions.add_session_config_entry`)."""
        if self.spinning:
            return {}
        return {"session.intra_op.allow_spinning": "0", "session.inter_op.allow_spinning": "0"}

    def ort_providers(self) -> list[str | tuple[str, dict[str, object]]]:
        """The provider list handed to `onnxruntime.InferenceSession`, most preferred first."""
        available = ort.get_available_providers()
        if self.provider not in _ORT_NAMES:
            raise ValueError(f"provider {self.provider!r} does not run on ONNX Runtime")
        wanted = _ORT_NAMES[self.provider]
        if wanted not in available:
            hint = {
                "cuda": "install onnxruntime-gpu (pip uninstall -y onnxruntime && pip install onnxruntime-gpu)",
                "tensorrt": "install onnxruntime-gpu and TensorRT",
            }.get(self.provider, "")
            raise ProviderUnavailableError(
                f"execution provider {self.provider!r} ({wanted}) is not available in this onnxruntime "
                f"(available: {', '.join(available)}); {hint}".rstrip("; ")
            )
        cuda_options: dict[str, object] = {"device_id": self.device_id}
        if self.cuda_graph:
            cuda_options["enable_cuda_graph"] = "1"
        cuda = ("CUDAExecutionProvider", cuda_options)
        if self.provider == "cpu":
            return ["CPUExecutionProvider"]
        if self.provider == "cuda":
            return [cuda, "CPUExecutionProvider"]
        trt_options: dict[str, object] = {
            "device_id": self.device_id,
            "trt_fp16_enable": self.trt_fp16,
            "trt_max_workspace_size": self.trt_workspace_bytes,
        }
        if self.trt_cache_dir:
            trt_options.update(
                trt_engine_cache_enable=True,
                trt_engine_cache_path=self.trt_cache_dir,
                trt_timing_cache_enable=True,
                trt_timing_cache_path=self.trt_cache_dir,
            )
        return [("TensorrtExecutionProvider", trt_options), cuda, "CPUExecutionProvider"]


class GraphSession(Protocol):
    """Runs one graph: numpy inputs by name in, numpy outputs by name out."""

    name: str
    provider: str
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


def checked_feeds(
    graph: str, input_names: tuple[str, ...], dtypes: dict[str, object], feeds: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """`feeds` with exactly the graph's inputs, each contiguous in its declared dtype (None: as given)."""
    missing = [n for n in input_names if n not in feeds]
    extra = [n for n in feeds if n not in input_names]
    if missing or extra:
        raise ValueError(f"graph {graph}: missing inputs {missing}, unexpected inputs {extra}")
    out = {}
    for name in input_names:
        dtype = dtypes[name]
        value = np.asarray(feeds[name])
        out[name] = np.ascontiguousarray(value, dtype=dtype) if dtype is not None else value
    return out


class OrtSession:
    """An ONNX Runtime session for one graph file; I/O binding with reused device buffers on CUDA."""

    def __init__(self, name: str, path: Path, config: ProviderConfig, *, half: bool = False) -> None:
        options = ort.SessionOptions()
        # Level ALL's CPU layout transforms crash ONNX Runtime on some fp16 conv graphs.
        cpu_half = half and config.provider == "cpu"
        options.graph_optimization_level = (
            ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED if cpu_half else ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        )
        if config.intra_op_threads:
            options.intra_op_num_threads = config.intra_op_threads
        options.enable_cpu_mem_arena = config.cpu_mem_arena
        for key, value in config.session_config_entries().items():
            options.add_session_config_entry(key, value)
        options.log_severity_level = 4  # fatal only: a failed run reaches the caller as one ModelRunError
        self.name = name
        with loading_graph(name, path):
            self._session = ort.InferenceSession(str(path), sess_options=options, providers=config.ort_providers())
        self.provider = self._session.get_providers()[0]
        self.input_names = tuple(i.name for i in self._session.get_inputs())
        self.output_names = tuple(o.name for o in self._session.get_outputs())
        self._input_dtypes = {i.name: _NUMPY_DTYPES.get(i.type) for i in self._session.get_inputs()}
        self._device_id = config.device_id
        self._use_binding = config.on_gpu
        self._cuda_graph = config.cuda_graph
        self._buffers: dict[str, ort.OrtValue] = {}
        log.info("graph %s (%s) runs on %s", name, Path(path).name, self.provider)

    @property
    def ort_session(self) -> ort.InferenceSession:
        """The ONNX Runtime session itself (for `svc_runtime.bundle.binding`'s device-resident I/O)."""
        return self._session

    @graph_run
    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._cuda_graph:
            raise ValueError(f"graph {self.name}: a CUDA-graph session runs only through "
                             "svc_runtime.bundle.binding.ConversionBinding (fixed device buffers)")
        feeds = checked_feeds(self.name, self.input_names, self._input_dtypes, feeds)
        if not self._use_binding:
            values = self._session.run(list(self.output_names), feeds)
            return dict(zip(self.output_names, values))
        binding = self._session.io_binding()
        for name, value in feeds.items():
            buffer = self._buffers.get(name)
            if buffer is None or tuple(buffer.shape()) != value.shape:
                buffer = ort.OrtValue.ortvalue_from_numpy(value, "cuda", self._device_id)
                self._buffers[name] = buffer
            else:
                buffer.update_inplace(value)
            binding.bind_ortvalue_input(name, buffer)
        for name in self.output_names:
            binding.bind_output(name, "cuda", self._device_id)
        self._session.run_with_iobinding(binding)
        return dict(zip(self.output_names, binding.copy_outputs_to_cpu()))


class TensorRTEngineSession:
    """A prebuilt TensorRT engine (`.plan` from the bundle).

    Device memory comes from ONNX Runtime's CUDA allocator (OrtValue), so the
    runtime needs neither torch nor pycuda. UNTESTED here: no GPU was available
    where this was written; see docs/bundle.md.
    """

    def __init__(self, name: str, path: Path, config: ProviderConfig) -> None:
        try:
            import tensorrt as trt
        except ImportError as exc:
            raise ProviderUnavailableError(
                f"graph {name}: the bundle's TensorRT engine needs the tensorrt package (pip install tensorrt)"
            ) from exc
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise ProviderUnavailableError(
                f"graph {name}: running a TensorRT engine needs onnxruntime-gpu for CUDA buffers"
            )
        self._trt = trt
        self.name = name
        self.provider = f"TensorRT {trt.__version__} engine"
        self._device_id = config.device_id
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self._engine = runtime.deserialize_cuda_engine(Path(path).read_bytes())
        if self._engine is None:
            raise RuntimeError(
                f"{path}: TensorRT could not load this engine; engines only run on the GPU model and "
                "TensorRT version they were built with (see the manifest) - rebuild with svc-export --trt"
            )
        self._context = self._engine.create_execution_context()
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        mode = self._engine.get_tensor_mode
        self.input_names = tuple(n for n in names if mode(n) == trt.TensorIOMode.INPUT)
        self.output_names = tuple(n for n in names if mode(n) == trt.TensorIOMode.OUTPUT)
        log.info("graph %s (%s) runs on %s", name, Path(path).name, self.provider)

    @graph_run
    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        trt = self._trt
        keep: list[ort.OrtValue] = []
        for name in self.input_names:
            dtype = trt.nptype(self._engine.get_tensor_dtype(name))
            value = np.ascontiguousarray(feeds[name], dtype=dtype)
            device = ort.OrtValue.ortvalue_from_numpy(value, "cuda", self._device_id)
            keep.append(device)
            self._context.set_input_shape(name, value.shape)
            self._context.set_tensor_address(name, device.data_ptr())
        outputs = {}
        for name in self.output_names:
            dtype = trt.nptype(self._engine.get_tensor_dtype(name))
            shape = tuple(self._context.get_tensor_shape(name))
            device = ort.OrtValue.ortvalue_from_shape_and_type(shape, dtype, "cuda", self._device_id)
            outputs[name] = device
            self._context.set_tensor_address(name, device.data_ptr())
        if not self._context.execute_async_v3(0):
            raise RuntimeError(f"graph {self.name}: TensorRT execution failed")
        return {name: value.numpy() for name, value in outputs.items()}


def open_session(
    name: str, path: Path, config: ProviderConfig, *, engine: Path | None = None, half: bool = False
) -> GraphSession:
    """A session for graph `name` (`half`: an fp16 graph); a prebuilt engine when the provider
    is tensorrt and one is given."""
    if config.provider == "tensorrt" and engine is not None:
        return TensorRTEngineSession(name, engine, config)
    if config.provider == "openvino":
        from svc_runtime.bundle.openvino_session import OpenVinoSession

        return OpenVinoSession(name, path, config)
    return OrtSession(name, path, config, half=half)
