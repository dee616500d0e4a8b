"""Device-resident I/O for the conversion graph (`svc_runtime.bundle.binding`), on CPU `OrtValue`s.

ONNX Runtime binds CPU buffers exactly as CUDA ones, so the transfer logic runs here: outputs must equal
`run_windows` bit for bit (same graph, same inputs; the noise drawn on the "device" by the feeder graph
from the same table), and a steady chunk must cost one upload and one download.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from benchmarks.device_check import ROLE, bound_runs, make_model, reference_runs, stream_windows, tone
from svc_runtime.bundle.binding import CHUNK_FLOATS, DEVICE_DRAWN
from svc_runtime.bundle.sessions import ProviderConfig
from svc_runtime.pipeline.noise import NoiseStream
from svc_runtime.pipeline.window import Controls, run_windows


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    from svc_runtime import Bundle

    _, _, folder = make_model(tmp_path_factory.getbasetemp() / "device_check_micro", "micro")
    return Bundle.load(folder, "cpu")


@pytest.fixture(scope="module")
def controls(bundle):
    return Controls.create(2.0, 0.4, bundle.manifest.model.ssl_dim)


def _windows(bundle, frames=43, count=3):
    m = bundle.manifest.model
    return stream_windows(bundle, tone(count * frames * m.hop_length / m.sampling_rate, m.sampling_rate), frames, count)


def test_bound_runs_equal_run_windows_with_one_upload_and_one_download_per_chunk(bundle, controls):
    from svc_runtime.bundle.binding import ConversionBinding

    windows = _windows(bundle)
    ref = reference_runs(bundle, windows, controls)
    binding = ConversionBinding(bundle, ROLE)
    assert binding.counter.host_to_device == 1  # the noise table, once
    runs = bound_runs(binding, windows, controls)
    for r, q in zip(runs, ref):
        np.testing.assert_array_equal(r.audio[0], q.audio)
        np.testing.assert_array_equal(r.f0[0], q.f0)
        np.testing.assert_array_equal(r.uv[0], q.uv)
        np.testing.assert_array_equal(r.phase_out[0], q.phase_out)
    assert np.abs(ref[0].audio).max() > 1e-3  # the comparison is not between silences
    # first chunk: packed row, speaker weights and controls, the starting phase; later chunks carry the phase
    statics = [n for n in binding.input_names if n not in (*CHUNK_FLOATS, *DEVICE_DRAWN, "phase_in")]
    assert "speaker" in statics and "f0_scale" in statics
    assert runs[0].transfers.host_to_device == 1 + len(statics) + 1
    assert [r.transfers.host_to_device for r in runs[1:]] == [1, 1]
    assert all(r.transfers.device_to_host == 4 for r in runs)  # audio, f0, uv, phase_out: all asked for

    # the steady streaming state: only the packed chunk goes up, only the audio comes back
    m = bundle.manifest.model
    frames = windows[0].frames
    steady = binding.run([replace(windows[0], start=3 * frames)], controls, carry_phase=True).transfers
    assert (steady.host_to_device, steady.device_to_host) == (1, 1)
    assert steady.device_to_host_bytes == frames * m.hop_length * 4
    sine_bytes = frames * m.hop_length * m.n_harmonics * 4
    assert steady.host_to_device_bytes < windows[0].wav16k.nbytes + 1024 < sine_bytes  # no noise on the bus


def test_a_batch_of_streams_draws_each_streams_noise(bundle, controls):
    """Two windows of different streams and starts in one batch: the feeder picks each one's noise."""
    from svc_runtime.bundle.binding import ConversionBinding

    m = bundle.manifest.model
    a, b = _windows(bundle, frames=40, count=2)
    other = NoiseStream(7, 3, m.inter_channels, m.hop_length, m.n_harmonics)
    b = replace(b, noise=other, start=12345, phase_in=other.initial_phase(), state_frame=17)
    ref = run_windows(bundle, ROLE, [a, b], controls)
    out = ConversionBinding(bundle, ROLE).run([a, b], controls, fetch=("audio", "phase_out"))
    for k in range(2):
        np.testing.assert_array_equal(out.audio[k], ref[k].audio)
        np.testing.assert_array_equal(out.phase_out[k], ref[k].phase_out)


def test_changed_speaker_goes_up_and_carrying_needs_a_previous_run(bundle, controls):
    from svc_runtime.bundle.binding import ConversionBinding

    binding = ConversionBinding(bundle, ROLE)
    w = _windows(bundle, frames=30, count=1)[0]
    with pytest.raises(ValueError, match="no earlier run of this window shape"):
        binding.run([w], controls, carry_phase=True)
    first = binding.run([w], controls, fetch=("audio", "phase_out"))
    swapped = replace(w, speaker=w.speaker * 0.5)  # another mix (the micro model has one speaker)
    moved = binding.run([swapped], controls, carry_phase=True)
    assert moved.transfers.host_to_device == 2  # packed row + the new speaker weights
    ref = run_windows(bundle, ROLE, [replace(swapped, phase_in=first.phase_out[0])], controls)[0]
    np.testing.assert_array_equal(moved.audio[0], ref.audio)
    with pytest.raises(ValueError, match="fetch must include 'audio'"):
        binding.run([w], controls, fetch=("f0",))


def test_streaming_through_the_binding_equals_the_host_path(bundle):
    from svc_runtime.streaming import StreamingConverter

    sr = bundle.sampling_rate
    block = int(0.05 * sr)
    host = StreamingConverter(bundle, block)
    bound = StreamingConverter(bundle, block, device=ProviderConfig(provider="cpu"))
    x = tone(12 * block / sr, sr)
    for k in range(12):
        np.testing.assert_array_equal(bound.process(x[k * block : (k + 1) * block]), host.process(x[k * block : (k + 1) * block]))
    before = bound.binding.counter.copy()
    bound.process(x[:block])
    per_block = bound.binding.counter.since(before)
    assert (per_block.host_to_device, per_block.device_to_host) == (1, 1)
    bound.reset()  # a new stream uploads its starting phase again
    host.reset()
    np.testing.assert_array_equal(bound.process(x[:block]), host.process(x[:block]))


def test_cuda_graph_is_a_cuda_option():
    with pytest.raises(ValueError, match="cuda_graph needs provider 'cuda'"):
        ProviderConfig(provider="cpu", cuda_graph=True)
    if "CUDAExecutionProvider" not in __import__("onnxruntime").get_available_providers():
        pytest.skip("no onnxruntime-gpu here")
    options = dict(ProviderConfig(provider="cuda", cuda_graph=True).ort_providers()[0][1])
    assert options["enable_cuda_graph"] == "1"
