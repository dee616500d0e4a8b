"""The conversion graphs on OpenVINO's CPU plugin (issue 16): the int32-limb NSF phase is exact there, and
the graphs agree with ONNX Runtime.

OpenVINO's CPU plugin computes int32 Add, Sub, Mul and CumSum exactly but integer Div and Mod through float32
(exact only up to 2^24), and float32 Divide as a multiplication by the reciprocal (constant chains folded). The
graph's phase arithmetic keeps every integer below 2^24, so the accumulation is exact there at the longest
window; the float32 increment f0 * (h + 1) / 44100 can differ by 1-2 ulp from ONNX Runtime's correctly rounded
division, so OpenVINO's phases follow their own increments: the carried phase differs from ONNX Runtime's by
up to ~2 ulp of the increment times hop per frame (2e-4 .. 3e-4 cycles after 150 frames here, far below what
FCPE's own F0 difference between the backends would make), and a run split anywhere still gives OpenVINO's
own phases bit for bit.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from svc_runtime.bundle import openvino_session
from svc_runtime.bundle.sessions import ProviderConfig
from svc_runtime.signal.nsf_phase import PHASE_MAX_FRAMES, limbs_to_cycles, limbs_to_phase, phase_to_limbs
from svc_runtime.signal.quality import snr_db

FIXTURES = Path(__file__).parent / "fixtures"
HOP = 512
pytestmark = pytest.mark.skipif(not openvino_session.openvino_available(),
                                reason="openvino is not installed (pip install openvino)")


class IncrementTrack(torch.nn.Module):
    """`frame_phases` from given float32 increments [B, T, H] (hop 1023, the largest the limbs allow)."""

    def forward(self, increment, phase_in, state_frame):
        import svc_export.converter_graph as graph

        original = graph.phase_increments
        graph.phase_increments = lambda f0, source_sr, harmonics: f0
        try:
            return graph.frame_phases(increment, 1023, 44100.0, 9, phase_in, state_frame)
        finally:
            graph.phase_increments = original


def test_phase_accumulation_is_exact_in_openvino_at_the_window_bound(tmp_path):
    """The longest window, the largest hop, increments just below one cycle per sample and the largest carried
    phase: every digit sum at its bound. OpenVINO's phases and phase_out equal the int64 reference exactly."""
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    frames, hop = PHASE_MAX_FRAMES, 1023
    increment = rng.random((3, frames, 9)).astype(np.float32)
    increment[0] = np.float32(1 - 2**-24)
    increment[2] = (rng.random((frames, 9)) ** 8).astype(np.float32)  # slow harmonics too
    fixed = np.full((3, 9), (1 << 40) - 1, np.int64)
    state = np.array([frames, 12345, 99999])
    path = tmp_path / "phase_track.onnx"
    example = (torch.from_numpy(increment[:, :50]), torch.from_numpy(phase_to_limbs(fixed)), torch.tensor([50, 7, 3]))
    torch.onnx.export(IncrementTrack(), example, str(path), input_names=["increment", "phase_in", "state_frame"],
                      output_names=["phases", "phase_out"], opset_version=17, dynamo=False,
                      dynamic_axes={"increment": {0: "batch", 1: "frames"}, "phase_in": {0: "batch"},
                                    "state_frame": {0: "batch"}})
    feeds = {"increment": increment, "phase_in": phase_to_limbs(fixed), "state_frame": state}
    compiled = openvino_session._core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    result = compiled(feeds)
    phases, phase_out = (result[port] for port in compiled.outputs)
    quantum = np.floor(increment.astype(np.float64) * 2.0**40).astype(np.int64)
    advance = quantum * hop % (1 << 40)
    running = np.cumsum(advance, axis=1)
    before = (fixed[:, None] + running - advance) % (1 << 40)
    np.testing.assert_array_equal(phases, before.astype(np.float32) * np.float32(2.0**-40))
    want = [(fixed[b] + running[b, k - 1]) % (1 << 40) for b, k in enumerate(state)]
    np.testing.assert_array_equal(limbs_to_phase(phase_out), np.stack(want))
    np.testing.assert_array_equal(phase_out, ort.InferenceSession(str(path)).run(None, feeds)[1])


# --------------------------------------------------------------------------- a small exported bundle


def _tone(frames: int, sr: int = 44100) -> np.ndarray:
    t = np.arange(frames * HOP) / sr
    f0 = 220.0 * 2.0 ** (0.3 * np.sin(2 * np.pi * 0.5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    return (0.3 * sum(np.sin(k * phase) / k for k in (1, 2, 3)) / 1.5).astype(np.float32)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """The sovits41_small architecture (ssl_dim 64) with the contentvec_small encoder and FCPE, loaded on ONNX
    Runtime and on OpenVINO (fp32)."""
    from svc_export.exporter import ExportRequest, export_bundle
    from svc_runtime import Bundle
    from svc_train.checkpoint import build_generator, save_checkpoint

    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    work = tmp_path_factory.mktemp("ov_converter")
    config = json.loads((FIXTURES / "sovits41_small" / "config.json").read_text())
    config["model"]["ssl_dim"] = 64
    (work / "config.json").write_text(json.dumps(config, indent=2))
    torch.manual_seed(1234)
    save_checkpoint(work / "G.pth", build_generator(work / "config.json"), 0, 1e-4)
    export_bundle(ExportRequest(checkpoint=work / "G.pth", config=work / "config.json", output=work / "bundle",
                                encoder_checkpoint=FIXTURES / "contentvec_small" / "fairseq_checkpoint.pt",
                                pitch="fcpe", simplify=False))
    torch.set_num_threads(previous)
    ort = Bundle.load(work / "bundle", ProviderConfig(intra_op_threads=2))
    ov = Bundle.load(work / "bundle", ProviderConfig(provider="openvino", intra_op_threads=2, ov_cache_dir=""))
    return ort, ov


def _windows(bundle, frames: int, state_frame: int):
    from svc_runtime.audio.resample import resample
    from svc_runtime.pipeline.noise import NoiseStream
    from svc_runtime.pipeline.window import Window

    m = bundle.manifest.model
    wav16k = resample(_tone(frames, m.sampling_rate), m.sampling_rate, 16000)
    noise = NoiseStream(7, 0, m.inter_channels, m.hop_length, m.n_harmonics)
    speaker = np.zeros((frames, m.n_speakers), np.float32)
    speaker[:, 1] = 1.0
    f0 = np.where(np.arange(frames) % 50 < 40, 220.0 * 2 ** (np.arange(frames) / 400), 0.0).astype(np.float32)
    return Window(wav16k=wav16k, start=0, frames=frames, noise=noise, phase_in=noise.initial_phase(),
                  state_frame=state_frame, speaker=speaker, f0=f0)


@pytest.mark.parametrize("role", ["converter", "converter_f0"])
def test_conversion_graphs_on_openvino_match_onnx_runtime(bundles, role):
    from svc_runtime.pipeline.window import Controls, run_windows

    ort, ov = bundles
    window = _windows(ort, 200, 150)
    controls = Controls.create(2.0, 0.4, ort.manifest.model.ssl_dim)
    want, got = run_windows(ort, role, [window], controls)[0], run_windows(ov, role, [window], controls)[0]
    assert ov.sessions[role].provider.startswith("OpenVINO CPU (fp32")  # not refused, not ONNX Runtime
    assert got.phase_out.dtype == np.int32 and got.phase_out.shape == (3, 9)
    assert snr_db(want.audio, got.audio) > 100  # measured 118 dB (converter), 119 dB (converter_f0)
    if role == "converter_f0":
        np.testing.assert_array_equal(got.f0, want.f0)  # the host's F0: the same increments up to 2 ulp
    else:
        np.testing.assert_allclose(got.f0, want.f0, atol=1e-2)  # FCPE inside: measured 4.3e-4 Hz
    drift = np.abs(limbs_to_cycles(got.phase_out) - limbs_to_cycles(want.phase_out))
    assert np.minimum(drift, 1 - drift).max() < 2e-3  # cycles after 150 frames: measured 3.2e-4, 2.0e-4


def test_a_split_run_on_openvino_carries_its_phase_exactly(bundles):
    """OpenVINO's own phases, split anywhere: window [0, 200) to frame 120 then [120, 200) from the carried phase
    gives the phase_out of one run to frame 200, bit for bit (the host's F0, so both runs see the same F0)."""
    from dataclasses import replace

    from svc_runtime.pipeline.window import Controls, run_windows

    _, ov = bundles
    controls = Controls.create(0.0, 0.4, ov.manifest.model.ssl_dim)
    whole = _windows(ov, 200, 200)
    once = run_windows(ov, "converter_f0", [whole], controls)[0]
    first = run_windows(ov, "converter_f0", [replace(whole, state_frame=120)], controls)[0]
    m = ov.manifest.model
    rest = replace(whole, wav16k=whole.wav16k[int(round(120 * HOP * 16000 / m.sampling_rate)):], start=120,
                   frames=80, phase_in=first.phase_out, state_frame=80, speaker=whole.speaker[120:], f0=whole.f0[120:])
    second = run_windows(ov, "converter_f0", [rest], controls)[0]
    np.testing.assert_array_equal(second.phase_out, once.phase_out)
