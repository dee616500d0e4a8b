"""Serialised TensorRT engines from the bundle's ONNX graphs.

UNTESTED: written without a GPU or TensorRT (none was available where this was
built). The checks that run first (`require_tensorrt`) are tested; the builder
follows the TensorRT 10 Python API (explicit batch, optimisation profiles,
timing cache, `build_serialized_network`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from svc_runtime.bundle.manifest import ShapeRange


class TensorRTUnavailableError(RuntimeError):
    """tensorrt is not installed or no CUDA GPU is visible."""


@dataclass(frozen=True)
class AxisRange:
    """min/opt/max of one dynamic axis."""

    min: int
    opt: int
    max: int

    def __post_init__(self) -> None:
        if not 1 <= self.min <= self.opt <= self.max:
            raise ValueError(f"need 1 <= min <= opt <= max, got {self.min}, {self.opt}, {self.max}")

    @classmethod
    def parse(cls, text: str, what: str) -> "AxisRange":
        try:
            low, opt, high = (int(v) for v in text.split(","))
            return cls(low, opt, high)
        except ValueError as exc:
            raise ValueError(f"{what}: expected MIN,OPT,MAX positive integers with MIN<=OPT<=MAX, got {text!r}") from exc


@dataclass(frozen=True)
class ProfileOptions:
    """Ranges of the named dynamic axes; `samples` is the 16 kHz waveform length of the
    encoder/pitch graphs (the generator's sample axis follows frames * hop)."""

    batch: AxisRange = AxisRange(1, 1, 4)
    frames: AxisRange = AxisRange(8, 512, 4096)
    samples: AxisRange = AxisRange(1600, 160000, 960000)

    @classmethod
    def streaming(cls) -> "ProfileOptions":
        """Small chunks, one stream: short frame ranges optimised for ~0.4 s chunks."""
        return cls(batch=AxisRange(1, 1, 1), frames=AxisRange(8, 32, 256), samples=AxisRange(1600, 8000, 48000))


def require_tensorrt() -> tuple[str, str, str]:
    """(tensorrt version, GPU name, compute capability), or a clear error before any work."""
    try:
        import tensorrt
    except ImportError as exc:
        raise TensorRTUnavailableError(
            "--trt needs the tensorrt Python package (pip install 'svc-toolkit[trt]') on a machine with an "
            "NVIDIA GPU; nothing was written"
        ) from exc
    import torch

    if not torch.cuda.is_available():
        raise TensorRTUnavailableError(
            "--trt needs a CUDA GPU (engines are built for the GPU they will run on) and torch sees none; "
            "nothing was written"
        )
    major, minor = torch.cuda.get_device_capability(0)
    return tensorrt.__version__, torch.cuda.get_device_name(0), f"{major}.{minor}"


def input_profile(
    inputs: list[tuple[str, tuple[int | str, ...]]], options: ProfileOptions, hop: int
) -> dict[str, ShapeRange]:
    """Profile shapes per input from its manifest shape (axis names -> ranges)."""
    def dims(shape: tuple[int | str, ...], pick: str) -> tuple[int, ...]:
        out = []
        for dim in shape:
            if isinstance(dim, int):
                out.append(dim)
            elif dim == "batch":
                out.append(getattr(options.batch, pick))
            elif dim == "frames":
                out.append(getattr(options.frames, pick))
            elif dim == "samples" and hop:
                out.append(getattr(options.frames, pick) * hop)
            elif dim == "samples":
                out.append(getattr(options.samples, pick))
            else:
                raise ValueError(f"no TensorRT range for axis {dim!r}")
        return tuple(out)

    return {
        name: ShapeRange(min=dims(shape, "min"), opt=dims(shape, "opt"), max=dims(shape, "max"))
        for name, shape in inputs
        if any(isinstance(d, str) for d in shape)
    }


def build_engine(
    onnx_path: Path,
    engine_path: Path,
    profile: dict[str, ShapeRange],
    precision: str,
    timing_cache: Path,
    fp32_scopes: tuple[str, ...] = (),
    workspace_bytes: int = 4 << 30,
) -> None:
    """Parse `onnx_path`, build one optimisation profile, write the serialised engine.

    With fp16, layers whose name holds one of `fp32_scopes` (the NSF source, the coarse
    pitch mapping, the mel front end) and every normalisation layer are pinned to fp32.
    """
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT cannot parse {onnx_path.name}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
        if _pin_fp32_layers(trt, network, fp32_scopes):
            config.set_flag(trt.BuilderFlag.PREFER_PRECISION_CONSTRAINTS)
    cache_bytes = timing_cache.read_bytes() if timing_cache.is_file() else b""
    cache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(cache, ignore_mismatch=False)
    optimisation = builder.create_optimization_profile()
    for name, shapes in profile.items():
        optimisation.set_shape(name, shapes.min, shapes.opt, shapes.max)
    config.add_optimization_profile(optimisation)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path.name}")
    engine_path.write_bytes(bytes(serialized))
    timing_cache.write_bytes(bytes(config.get_timing_cache().serialize()))


def _pin_fp32_layers(trt, network, fp32_scopes: tuple[str, ...]) -> int:
    """Ask for fp32 on the numerically sensitive float layers; returns how many were pinned."""
    pinned = 0
    floats = (trt.float32, trt.float16)
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        sensitive = layer.type == trt.LayerType.NORMALIZATION or any(scope in layer.name for scope in fp32_scopes)
        outputs = [layer.get_output(j) for j in range(layer.num_outputs)]
        if not sensitive or not outputs or any(out.dtype not in floats for out in outputs):
            continue
        layer.precision = trt.float32
        for j in range(layer.num_outputs):
            layer.set_output_type(j, trt.float32)
        pinned += 1
    return pinned
