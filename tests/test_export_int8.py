"""`svc-export --int8`: int8 CPU graphs of the generator and speech encoder, their quality
gate against the fp32 graphs, and `precision="int8"` in the runtime.

One bundle (the pipeline fixture's generator, sovits41_small with ssl_dim 64, and the
contentvec_small encoder) is exported once per module with `--int8` through the CLI.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from svc_runtime import Bundle

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

FIXTURES = Path(__file__).parent / "fixtures"

GENERATOR_MIN_SNR_DB = 60.0
"""Measured 75.6 dB (synthetic phrase, 378 frames) for this fresh-initialised small generator."""
ENCODER_MIN_COSINE = 0.99
"""Measured mean per-frame cosine 0.9947 for contentvec_small (random weights, 64-dim)."""


def run_cli(*args: str | Path):
    from svc_export.cli import app

    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200", "NO_COLOR": "1"})


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> tuple[Path, Path]:
    from svc_train.checkpoint import build_generator, save_checkpoint

    torch.set_num_threads(2)
    folder = tmp_path_factory.mktemp("int8-model")
    config = json.loads((FIXTURES / "sovits41_small" / "config.json").read_text())
    config["model"]["ssl_dim"] = 64
    (folder / "config.json").write_text(json.dumps(config))
    torch.manual_seed(1234)
    save_checkpoint(folder / "G.pth", build_generator(folder / "config.json"), 0, 1e-4)
    return folder / "G.pth", folder / "config.json"


@pytest.fixture(scope="module")
def int8_export(model, tmp_path_factory):
    """(bundle dir, CLI output) of `svc-export --int8 --no-simplify` with the contentvec_small encoder."""
    checkpoint, config = model
    out = tmp_path_factory.mktemp("int8-bundle") / "bundle"
    result = run_cli(checkpoint, "--config", config, "-o", out, "--no-simplify", "--int8",
                     "--encoder-checkpoint", FIXTURES / "contentvec_small" / "fairseq_checkpoint.pt")
    assert result.exit_code == 0, result.output
    return out, result.output


def test_int8_graphs_in_manifest_and_quality(int8_export):
    from svc_runtime.bundle.manifest import Manifest

    bundle_dir, output = int8_export
    manifest = Manifest.read(bundle_dir)
    assert {n: g.precision for n, g in manifest.graphs.items() if g.precision == "int8"} == {
        "generator_int8": "int8", "speech_encoder_int8": "int8", "converter_f0_int8": "int8", "synthesis_int8": "int8"}
    converter = manifest.graphs["converter_f0_int8"]
    assert converter.role == "converter_f0" and converter.inputs == manifest.graphs["converter_f0"].inputs
    converter_ops = {n.op_type for n in onnx.load(str(bundle_dir / converter.file)).graph.node}
    assert "QLinearConv" in converter_ops and not {"QLinearAdd", "QLinearLeakyRelu"} & converter_ops  # convs only
    (record,) = converter.parity
    assert record.reference.startswith("converter_f0.onnx") and record.max_abs_error <= record.tolerance
    generator = manifest.graphs["generator_int8"]
    assert generator.file == "generator.int8.onnx" and generator.role == "generator"
    assert generator.inputs == manifest.graphs["generator"].inputs  # same fp32 feeds as the fp32 graph
    assert manifest.graphs["speech_encoder_int8"].file == "speech_encoder.int8.onnx"
    ops = {n.op_type for n in onnx.load(str(bundle_dir / generator.file)).graph.node}
    assert "QLinearConv" in ops and not {"QLinearAdd", "QLinearLeakyRelu"} & ops and "ConvTranspose" not in ops
    assert "int8 vs fp32 graph" in output and "SNR dB" in output
    (record,) = generator.parity
    assert record.reference.startswith("generator.onnx") and record.max_abs_error <= record.tolerance
    assert record.snr_db > GENERATOR_MIN_SNR_DB  # the gate's SNR, recorded for hosts and svc-run info


def test_int8_generator_snr_and_encoder_cosine(int8_export):
    """Recomputed here on fresh inputs: synthetic-phrase features, not the export's own report."""
    from svc_export.int8 import (
        GeneratorShape,
        compare_generator,
        generator_calibration_feeds,
        synthetic_phrase,
    )
    from svc_runtime.bundle.manifest import Manifest

    bundle_dir, _ = int8_export
    model = Manifest.read(bundle_dir).model
    shape = GeneratorShape(model.sampling_rate, model.hop_length, model.ssl_dim, model.inter_channels,
                           model.n_speakers, model.n_harmonics, model.nsf_source_sampling_rate,
                           model.unit_interpolate_mode, model.vol_embedding)
    clip = synthetic_phrase(model.sampling_rate, seconds=2.0, seed=7)
    feeds = generator_calibration_feeds([clip], shape, bundle_dir / "speech_encoder.onnx", seed=3)
    report = compare_generator(bundle_dir / "generator.int8.onnx", bundle_dir / "generator.onnx", feeds, "test", 0)
    assert report.snr_db > GENERATOR_MIN_SNR_DB, report
    assert report.max_abs < 2e-3 * 5, report

    import onnxruntime as ort

    from svc_runtime.audio.resample import resample

    wav = resample(clip, model.sampling_rate, 16000).astype(np.float32)[None]
    fp32, int8 = (ort.InferenceSession(str(bundle_dir / f), providers=["CPUExecutionProvider"])
                  for f in ("speech_encoder.onnx", "speech_encoder.int8.onnx"))
    a, b = (s.run(None, {"wav": wav})[0][0].astype(np.float64) for s in (int8, fp32))
    assert a.shape == b.shape
    cosine = np.sum(a * b, 0) / (np.linalg.norm(a, axis=0) * np.linalg.norm(b, axis=0))
    assert cosine.mean() > ENCODER_MIN_COSINE, cosine.mean()


def test_runtime_converts_with_int8(int8_export, tmp_path):
    from svc_runtime.audio.decode import decode_audio
    from svc_runtime.cli import app as run_app
    from tests.pipeline_fixture import SR, vibrato_tone

    bundle_dir, _ = int8_export
    bundle = Bundle.load(bundle_dir, precision="int8")
    assert bundle.graph_entry("converter_f0").precision == "int8"
    assert bundle.graph_entry("generator").precision == "int8"
    assert bundle.graph_entry("speech_encoder").precision == "int8"
    assert bundle.graph_entry("f0_predictor").precision == "fp32"  # no int8 copy: falls back

    import soundfile

    audio, _ = vibrato_tone(1.3)
    soundfile.write(tmp_path / "in.wav", audio, SR)
    result = CliRunner().invoke(run_app, ["convert", str(tmp_path / "in.wav"), "-m", str(bundle_dir), "-o",
                                          str(tmp_path / "out"), "--precision", "int8", "--f0-method", "pm", "-s", "alice",
                                          "--threads", "1"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    assert "converter_f0_int8" in result.output
    converted = decode_audio(tmp_path / "out" / "in.wav")
    assert converted.sample_rate == SR and converted.samples.size == audio.size
    assert np.isfinite(converted.samples).all() and np.abs(converted.samples).max() > 1e-3


def test_int8_refused_without_int8_graphs_or_on_gpu(int8_export, tmp_path):
    from svc_runtime.bundle.manifest import Manifest
    from svc_runtime.bundle.sessions import ProviderConfig

    bundle_dir, _ = int8_export
    plain = tmp_path / "plain"
    shutil.copytree(bundle_dir, plain)
    manifest = Manifest.read(plain)
    replace(manifest, graphs={n: g for n, g in manifest.graphs.items() if g.precision != "int8"}).write(plain)
    with pytest.raises(ValueError, match="no int8 graphs; re-export it with svc-export ... --int8"):
        Bundle.load(plain, precision="int8")
    assert Bundle.load(plain).graph_entry("generator").precision == "fp32"
    with pytest.raises(ValueError, match="int8 runs on the CPU provider only"):
        Bundle.load(bundle_dir, provider=ProviderConfig(provider="cuda"), precision="int8")

    from svc_export.int8 import add_int8_to_bundle  # an existing bundle gets its int8 graphs in place

    reports = add_int8_to_bundle(plain)
    assert [r.graph for r in reports] == ["generator.int8.onnx", "speech_encoder.int8.onnx", "converter_f0.int8.onnx",
                                          "synthesis.int8.onnx"]
    assert all(r.snr_db > GENERATOR_MIN_SNR_DB for r in reports if r.output == "audio")
    assert reports[0].snr_db > GENERATOR_MIN_SNR_DB
    loaded = Bundle.load(plain, precision="int8")  # verifies every sha256
    assert loaded.graph_entry("generator").file == "generator.int8.onnx"
    assert sorted(p.name for p in plain.iterdir() if p.name.startswith(".")) == []


def test_int8_quality_gate_refuses(int8_export, tmp_path):
    """A generator under the SNR gate is refused with the numbers, and no file is left
    (here with a gate above what int8 can reach: 200 dB)."""
    from svc_export import int8
    from svc_runtime.bundle.manifest import Manifest

    bundle_dir, _ = int8_export
    model = Manifest.read(bundle_dir).model
    shape = int8.GeneratorShape(model.sampling_rate, model.hop_length, model.ssl_dim, model.inter_channels,
                                model.n_speakers, model.n_harmonics, model.nsf_source_sampling_rate,
                                model.unit_interpolate_mode, model.vol_embedding)
    feeds = int8.generator_calibration_feeds([int8.synthetic_phrase(model.sampling_rate, 1.0)], shape, None)
    dst = tmp_path / "generator.int8.onnx"
    with pytest.raises(int8.Int8QualityError, match=r"audio SNR [0-9.]+ dB < 200 dB"):
        int8.quantize_generator(bundle_dir / "generator.onnx", dst, feeds, "test", min_snr_db=200.0)
    assert not dst.exists()


def test_int8_calibration_option_checks(model, tmp_path):
    checkpoint, config = model
    result = run_cli(checkpoint, "--config", config, "-o", tmp_path / "x", "--int8-calibration", tmp_path)
    assert result.exit_code == 2 and "add --int8" in result.output
    result = run_cli(checkpoint, "--config", config, "-o", tmp_path / "x", "--int8",
                     "--int8-calibration", tmp_path / "missing.wav")
    assert result.exit_code == 2 and "missing.wav does not exist" in result.output
    from svc_export.int8 import calibration_audio

    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no audio files"):
        calibration_audio(tmp_path / "empty", 44100)


def test_calibration_audio_and_features(tmp_path):
    """User calibration audio is decoded and resampled to the model's rate; features carry the
    volume input of vol_embedding models and cycle through the speakers."""
    import soundfile

    from svc_export.int8 import GeneratorShape, calibration_audio, generator_calibration_feeds, synthetic_phrase

    folder = tmp_path / "calib"
    (folder / "sub").mkdir(parents=True)
    soundfile.write(folder / "a.wav", synthetic_phrase(22050, 1.0, seed=1), 22050)
    soundfile.write(folder / "sub" / "b.flac", synthetic_phrase(22050, 0.5, seed=2), 22050)
    (folder / "notes.txt").write_text("not audio")
    sizes = [soundfile.info(folder / name).frames * 2 for name in ("a.wav", "sub/b.flac")]
    clips, origin = calibration_audio(folder, 44100)
    assert [c.size for c in clips] == sizes and "2 file(s)" in origin
    (single,), _ = calibration_audio(folder / "a.wav", 44100)
    assert single.size == sizes[0] and single.dtype == np.float32

    shape = GeneratorShape(44100, 512, 16, 8, 3, 9, 44100, "nearest", True)
    feeds = generator_calibration_feeds(clips, shape, None)
    frames = [f["f0"].shape[1] for f in feeds]
    assert frames == [86, sizes[0] // 512 - 86, sizes[1] // 512]  # 1 s (86-frame) chunks of each clip
    for index, feed in enumerate(feeds):
        n = feed["f0"].shape[1]
        assert feed["c"].shape == (1, 16, n) and feed["vol"].shape == (1, n) and feed["vol"].max() > 0
        assert feed["sine_noise"].shape == (1, n * 512, 9) and feed["phase"].shape == (1, n, 9)
        assert feed["speaker"][0, :, index % 3].all() and feed["speaker"].sum() == n
        voiced = feed["uv"][0] > 0  # the phrase sings 196..415 Hz notes, with pauses
        assert voiced.any() and np.all(feed["f0"][0][voiced] > 180) and np.all(feed["f0"][0][voiced] < 440)
    assert np.concatenate([f["uv"][0] for f in feeds]).mean() > 0.6


def test_fold_scalar_divisions_is_exact(int8_export):
    """The decoder's `/ num_kernels` moves into the next convs' weights with the same output."""
    import onnxruntime as ort

    from svc_export.int8 import fold_scalar_divisions

    bundle_dir, _ = int8_export
    model = onnx.load(str(bundle_dir / "generator.onnx"))
    feeds_relu = {i for n in model.graph.node if n.op_type == "LeakyRelu" for i in n.input}
    divisions = sum(n.op_type == "Div" and n.output[0] in feeds_relu for n in model.graph.node)
    assert fold_scalar_divisions(model) == divisions == 5  # one per upsampling stage of sovits41_small
    folded = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    original = ort.InferenceSession(str(bundle_dir / "generator.onnx"), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    frames, spec = 40, {i.name: i for i in original.get_inputs()}
    feeds = {
        "c": rng.standard_normal((1, 64, frames), dtype=np.float32), "f0": np.full((1, frames), 220.0, np.float32),
        "uv": np.ones((1, frames), np.float32), "speaker": np.eye(2, dtype=np.float32)[None, [0] * frames],
        "noise_prior": rng.standard_normal((1, spec["noise_prior"].shape[1], frames), dtype=np.float32),
        "noise_scale": np.array([0.35], np.float32), "phase": rng.random((1, frames, 9), dtype=np.float32),
        "sine_noise": rng.standard_normal((1, frames * 512, 9), dtype=np.float32),
    }
    a, b = (s.run(None, feeds)[0] for s in (folded, original))
    assert np.abs(a - b).max() < 1e-5 * max(1.0, np.abs(b).max())
