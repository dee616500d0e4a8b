"""Micro-benchmarks of single stages of our runtime (and the torch generator for comparison).

Not part of the test suite (pytest's testpaths is tests/). Run them with

    python -m pytest benchmarks/ --benchmark-enable [--benchmark-only]

SVC_BENCH_SIZE picks the model size (standard by default; tiny, micro). The models are
built into ~/.cache/svc-bench on first use (minutes for standard: `svc-export` runs once).
Every stage works on one second of corpus audio (synthetic without the corpus).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from benchmarks.inputs import SAMPLE_RATE, concatenated
from benchmarks.models import ensure_models

SIZE = os.environ.get("SVC_BENCH_SIZE", "standard")
SECONDS = 1.0


@pytest.fixture(scope="module")
def models():
    return ensure_models(SIZE)


@pytest.fixture(scope="module")
def bundle(models):
    from svc_runtime.bundle.bundle import Bundle

    return Bundle.load(models.bundle)


@pytest.fixture(scope="module")
def audio() -> np.ndarray:
    return concatenated(SECONDS)[0]


@pytest.fixture(scope="module")
def audio16k(audio) -> np.ndarray:
    from svc_runtime.audio.resample import resample

    return resample(audio, SAMPLE_RATE, 16000)


@pytest.fixture(scope="module")
def generator_inputs(bundle):
    m = bundle.manifest.model
    frames = int(np.ceil(SECONDS * m.sampling_rate / m.hop_length))
    rng = np.random.default_rng(0)
    f0 = np.full((1, frames), 220.0, np.float32)
    noise = bundle.draw_noise(1, frames, seed=1)
    phase, _ = bundle.source_phases(f0, rand_ini=noise.rand_ini)
    return {
        "c": rng.standard_normal((1, m.ssl_dim, frames), dtype=np.float32), "f0": f0,
        "uv": np.ones((1, frames), np.float32), "speaker_weights": bundle.one_hot_speakers(0, 1, frames),
        "phase": phase, "prior": noise.prior, "sine": noise.sine,
    }


def _pedantic(benchmark, fn, rounds: int = 5):
    return benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=1)


def test_resample_44k_to_16k(benchmark, audio):
    from svc_runtime.audio.resample import resample

    out = benchmark(resample, audio, SAMPLE_RATE, 16000)
    assert out.size == round(audio.size * 16000 / SAMPLE_RATE)


def test_slice_on_silence(benchmark, audio):
    from svc_runtime.signal.slicer import slice_on_silence

    segments = benchmark(slice_on_silence, audio, SAMPLE_RATE)
    assert segments and segments[-1].end == audio.size


def test_pitch_graph(benchmark, bundle, audio16k):
    if not bundle.has_graph("pitch"):
        pytest.skip(f"the {SIZE} bundle has no pitch graph (micro uses pm)")
    salience = _pedantic(benchmark, lambda: bundle.pitch_salience(audio16k))
    assert salience.shape[1] == audio16k.size // 160 + 1


def test_fcpe_decode_numpy(benchmark, bundle, audio16k):
    if not bundle.has_graph("pitch"):
        pytest.skip(f"the {SIZE} bundle has no pitch graph (micro uses pm)")
    from svc_runtime.pitch.decode import decode_fcpe

    salience = bundle.pitch_salience(audio16k)
    f0 = benchmark(decode_fcpe, salience)
    assert f0.shape == salience.shape[:-1]


def test_speech_encoder_graph(benchmark, bundle, audio16k):
    units = _pedantic(benchmark, lambda: bundle.encode_units(audio16k))
    assert units.shape[1] == bundle.manifest.speech_encoder.dim


def test_generator_graph(benchmark, bundle, generator_inputs):
    g = generator_inputs
    audio = _pedantic(benchmark, lambda: bundle.synthesize(
        g["c"], g["f0"], g["uv"], g["speaker_weights"], phase=g["phase"], prior=g["prior"], sine=g["sine"],
        noise_scale=0.4), rounds=3)
    assert audio.shape == (1, 1, g["c"].shape[2] * bundle.hop_length)


def test_generator_torch_eager(benchmark, models, generator_inputs):
    torch = pytest.importorskip("torch")
    from svc_train.checkpoint import load_generator

    model = load_generator(models.checkpoint, models.config)
    g = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in generator_inputs.items()}
    sid = torch.zeros(1, dtype=torch.long)
    audio, _ = _pedantic(benchmark, lambda: model.infer(g["c"], g["f0"], g["uv"], sid, noise_scale=0.4), rounds=3)
    assert audio.shape[-1] == g["c"].shape[2] * model.hop


def test_nsf_phases(benchmark, bundle, generator_inputs):
    phase, end = benchmark(bundle.source_phases, generator_inputs["f0"], rand_ini=np.zeros((1, 9), np.float32))
    assert phase.shape[:2] == generator_inputs["f0"].shape and end.shape == (1, 9)
