"""TensorRT: the parts that run without a GPU (profiles, option parsing, the up-front check).
Building and running engines needs tensorrt and a CUDA GPU: those tests skip without them."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from svc_export.tensorrt import (
    AxisRange,
    ProfileOptions,
    TensorRTUnavailableError,
    input_profile,
    require_tensorrt,
)

GENERATOR_INPUTS = [
    ("c", ("batch", 768, "frames")),
    ("noise_scale", (1,)),
    ("sine_noise", ("batch", "samples", 9)),
]


def test_generator_profile_ties_samples_to_frames():
    options = ProfileOptions(batch=AxisRange(1, 2, 4), frames=AxisRange(8, 64, 1024))
    profile = input_profile(GENERATOR_INPUTS, options, hop=512)
    assert set(profile) == {"c", "sine_noise"}  # fixed-shape inputs need no range
    assert profile["c"].min == (1, 768, 8) and profile["c"].opt == (2, 768, 64) and profile["c"].max == (4, 768, 1024)
    assert profile["sine_noise"].max == (4, 1024 * 512, 9)


def test_waveform_profile_uses_the_sample_range():
    options = ProfileOptions.streaming()
    profile = input_profile([("wav", ("batch", "samples"))], options, hop=0)
    assert profile["wav"].min == (1, 1600) and profile["wav"].opt == (1, 8000) and profile["wav"].max == (1, 48000)


def test_axis_ranges_are_checked():
    assert AxisRange.parse("1,4,8", "--trt-batch") == AxisRange(1, 4, 8)
    for text in ("1,4", "8,4,1", "0,1,2", "a,b,c"):
        with pytest.raises(ValueError, match="--trt-frames: expected MIN,OPT,MAX"):
            AxisRange.parse(text, "--trt-frames")
    with pytest.raises(ValueError, match="no TensorRT range for axis 'voices'"):
        input_profile([("x", ("voices",))], ProfileOptions(), hop=512)


def _tensorrt_ready() -> bool:
    try:
        import tensorrt  # noqa: F401
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


@pytest.mark.skipif(_tensorrt_ready(), reason="tensorrt and a GPU are present")
def test_require_tensorrt_says_what_is_missing():
    with pytest.raises(TensorRTUnavailableError, match="--trt needs .*nothing was written"):
        require_tensorrt()


@pytest.mark.gpu
@pytest.mark.skipif(not _tensorrt_ready(), reason="needs tensorrt and a CUDA GPU")
def test_engine_builds_and_matches_onnx_runtime(tmp_path):
    """On a GPU machine: export the fixture with --trt fp32 and run the engine through the bundle."""
    from pathlib import Path

    import numpy as np

    from svc_export.exporter import ExportRequest, export_bundle
    from svc_runtime import Bundle

    fixture = Path(__file__).parent / "fixtures" / "sovits41_small"
    out = tmp_path / "bundle"
    manifest = export_bundle(ExportRequest(checkpoint=fixture / "G_1.pth", config=fixture / "config.json",
                                           output=out, trt="fp32", simplify=False,
                                           trt_timing_cache=tmp_path / "timing.cache"))
    engine = manifest.engines["generator"]
    assert engine.profile["c"].max[2] == 4096 and engine.tensorrt_version
    io = dict(np.load(fixture / "io.npz"))
    frames = io["c"].shape[2]
    zero = {"prior": np.zeros((1, 32, frames), np.float32), "rand_ini": np.zeros((1, 9), np.float32),
            "sine": np.zeros((1, frames * 512, 9), np.float32)}
    trt_bundle = Bundle.load(out, provider="tensorrt")
    audio = trt_bundle.generate(io["c"], io["f0"], io["uv"], io["sid"], noise_scale=0.0, noise=zero)
    assert np.abs(audio - io["audio"]).max() < 1e-3
