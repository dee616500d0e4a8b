"""The manifest schema (round trip, validation messages) and the atomic bundle writer."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import pytest

from svc_runtime.bundle.bundle import BundleIntegrityError, verify_files
from svc_runtime.bundle.manifest import (
    GraphEntry,
    Manifest,
    ManifestError,
    ModelInfo,
    ParityRecord,
    PitchInfo,
    SpeechEncoderInfo,
    TensorSpec,
)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_manifest(files: dict[str, bytes]) -> Manifest:
    graph = GraphEntry(
        role="generator", file="generator.onnx", sha256=_sha(files["generator.onnx"]), precision="fp32", opset=17,
        inputs=(TensorSpec("c", "float32", ("batch", 768, "frames")), TensorSpec("noise_scale", "float32", (1,))),
        outputs=(TensorSpec("audio", "float32", ("batch", 1, "samples")),),
        parity=(ParityRecord("audio", 40, 2.4e-6, 1e-3, "torch"),),
    )
    pitch = GraphEntry(
        role="pitch", file="pitch.onnx", sha256=_sha(files["pitch.onnx"]), precision="fp32", opset=17,
        inputs=(TensorSpec("wav", "float32", ("batch", "samples")),),
        outputs=(TensorSpec("salience", "float32", ("batch", "frames", 360)),),
    )
    return Manifest(
        model=ModelInfo(
            sampling_rate=44100, hop_length=512, ssl_dim=768, inter_channels=32, gin_channels=32, n_harmonics=9,
            nsf_source_sampling_rate=44100, n_speakers=2, speakers={"alice": 0, "bob": 1}, vol_embedding=False,
            use_automatic_f0_prediction=True, unit_interpolate_mode="nearest", speech_encoder="vec768l12",
        ),
        graphs={"generator": graph, "pitch": pitch},
        speech_encoder=SpeechEncoderInfo(name="vec768l12", sampling_rate=16000, hop_length=320, dim=768),
        pitch=PitchInfo(method="rmvpe", sampling_rate=16000, hop_length=160, threshold=0.05, f0_min=50.0,
                        f0_max=1100.0, graph="pitch"),
        exporter={"tool": "svc-export", "opset": "17"},
    )


FILES = {"generator.onnx": b"generator graph bytes", "pitch.onnx": b"pitch graph bytes"}


def test_manifest_round_trips_through_json(tmp_path):
    manifest = make_manifest(FILES)
    assert Manifest.from_dict(json.loads(manifest.to_json())) == manifest
    manifest.write(tmp_path)
    assert Manifest.read(tmp_path) == manifest
    data = json.loads((tmp_path / "manifest.json").read_text())
    assert data["graphs"]["generator"]["inputs"][0] == {"name": "c", "dtype": "float32", "shape": ["batch", 768, "frames"]}
    assert "graph" not in data["speech_encoder"]  # None fields are left out
    assert manifest.graph_for("generator", "fp16")[0] == "generator"  # falls back to fp32


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.pop("model"), "model: required field is missing"),
        (lambda d: d.update(format="zip"), "format: expected 'svc-bundle'"),
        (lambda d: d.update(schema_version=4), "schema_version: this runtime reads version 3"),
        (lambda d: d.update(schema_version=2), "reads version 3, the bundle has 2; re-export the bundle"),
        (lambda d: d.update(schema_version=1), "version 1 bundle, made before the conversion graph; re-export"),
        (lambda d: d["model"].update(hop_length="512"), "model.hop_length: expected an integer, got str"),
        (lambda d: d["model"].update(hop_length=0), "model.hop_length: must be a positive integer"),
        (lambda d: d["model"].update(vol_embedding=1), "model.vol_embedding: expected a boolean"),
        (lambda d: d["model"]["speakers"].update(carol=5), "model.speakers.carol: id must be an integer in [0, 2)"),
        (lambda d: d["model"].update(unit_interpolate_mode="cubic"), "model.unit_interpolate_mode: must be one of"),
        (lambda d: d["graphs"]["generator"].update(sha256="abc"), "graphs.generator.sha256: expected 64"),
        (lambda d: d["graphs"]["generator"].update(role="mixer"), "graphs.generator.role: must be one of"),
        (lambda d: d["graphs"]["generator"].update(file="../evil.onnx"), "graphs.generator.file: must be a plain"),
        (lambda d: d["graphs"]["generator"]["inputs"][0].update(dtype="float64"), "inputs[0].dtype: must be one of"),
        (lambda d: d["graphs"]["generator"]["inputs"][0].update(shape=["batch", -1]), "inputs[0].shape[1]"),
        (lambda d: d["graphs"]["generator"].update(outputs=[]), "a graph needs at least one output"),
        (lambda d: d["graphs"].pop("generator"), "no graph with role 'generator'"),
        (lambda d: d["pitch"].update(graph="nope"), "pitch.graph: names graph 'nope'"),
        (lambda d: d["graphs"]["pitch"].update(file="generator.onnx"), "two entries name the same file"),
        (lambda d: d.update(engines={"e": {"graph": "generator"}}), "engines.e.file: required field is missing"),
    ],
)
def test_invalid_manifests_name_the_field(edit, message):
    data = copy.deepcopy(make_manifest(FILES).to_dict())
    edit(data)
    with pytest.raises(ManifestError) as error:
        Manifest.from_dict(data)
    assert message in str(error.value)


def test_unreadable_manifest_names_the_file(tmp_path):
    with pytest.raises(ManifestError, match="manifest.json: not found"):
        Manifest.read(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ManifestError, match="manifest.json: not valid JSON"):
        Manifest.read(tmp_path)
    (tmp_path / "manifest.json").write_text('{"format": "svc-bundle", "schema_version": 3}')
    with pytest.raises(ManifestError, match=r"manifest.json: graphs: required field is missing"):
        Manifest.read(tmp_path)


VOCODER = {"sampling_rate": 44100, "hop_size": 512, "num_mels": 128, "n_fft": 2048, "win_size": 2048,
           "fmin": 40.0, "fmax": 16000.0}
DIFFUSION = {"vocoder": VOCODER, "timesteps": 1000, "k_step_max": 100, "max_beta": 0.02, "spec_min": -12.0,
             "spec_max": 2.0, "unit_channels": 768, "hidden": 256, "n_spk": 1, "sampling_rate": 44100,
             "hop_size": 512, "method": "dpm-solver++", "speedup": 10}


def test_diffusion_section_and_roles_round_trip():
    import dataclasses

    spec = {**DIFFUSION, "note": None}  # a key the spec does not know, and a null: written back as read
    manifest = dataclasses.replace(make_manifest(FILES), diffusion=spec)
    data = manifest.to_dict()
    assert data["diffusion"] == spec  # kept verbatim, None values included
    data["graphs"]["vocoder"] = dict(data["graphs"]["pitch"], role="vocoder", file="nsf_hifigan.onnx")
    parsed = Manifest.from_dict(data)
    assert parsed.diffusion == spec and parsed.graphs["vocoder"].role == "vocoder"
    data["diffusion"] = [1, 2]
    with pytest.raises(ManifestError, match="diffusion: expected an object"):
        Manifest.from_dict(data)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"timesteps": 1000, "k_step_max": 100, "vocoder": {"sampling_rate": 44100}},
         "diffusion.vocoder.hop_size: required field is missing"),
        ({**DIFFUSION, "timesteps": "1000"}, "diffusion.timesteps: expected an integer, got str"),
        ({**DIFFUSION, "k_step_max": 0}, "diffusion.k_step_max: must be in [1, timesteps=1000], got 0"),
        ({**DIFFUSION, "method": "euler"}, "diffusion.method: must be one of"),
        ({**DIFFUSION, "hop_size": 256}, "diffusion: diffusion grid 44100 Hz / hop 256 differs from the vocoder's"),
        ({**DIFFUSION, "vocoder": {**VOCODER, "win_size": 4096}}, "diffusion.vocoder: does not fit: win_size (4096)"),
        ({"vocoder": {**VOCODER, "n_fft": "2048"}}, "diffusion.vocoder.n_fft: expected an integer, got str"),
        ({}, "diffusion.vocoder: required field is missing"),
    ],
)
def test_a_malformed_diffusion_section_is_refused_at_load_with_the_field(section, message):
    data = make_manifest(FILES).to_dict()
    data["diffusion"] = section
    with pytest.raises(ManifestError) as error:
        Manifest.from_dict(data)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_the_diffusion_section_reads_typed_in_either_form():
    import dataclasses

    from svc_runtime.diffusion.spec import DiffusionSpec, VocoderOnlySpec, VocoderSpec

    full = Manifest.from_dict({**make_manifest(FILES).to_dict(), "diffusion": DIFFUSION})
    assert isinstance(full.diffusion_spec(), DiffusionSpec) and full.diffusion_spec().to_dict()["timesteps"] == 1000
    alone = dataclasses.replace(full, diffusion={"vocoder": VOCODER})
    assert alone.diffusion_spec() == VocoderOnlySpec(VocoderSpec(**VOCODER))
    assert Manifest.from_dict(alone.to_dict()).diffusion == {"vocoder": VOCODER}
    assert make_manifest(FILES).diffusion_spec() is None


def test_engine_profiles_are_validated():
    data = make_manifest(FILES).to_dict()
    engine = {
        "graph": "generator", "file": "generator.fp16.plan", "sha256": "0" * 64, "precision": "fp16",
        "tensorrt_version": "10.0", "gpu": "NVIDIA H100", "compute_capability": "9.0",
        "profile": {"c": {"min": [1, 768, 8], "opt": [1, 768, 512], "max": [4, 768, 4096]}},
    }
    data["engines"] = {"generator": engine}
    parsed = Manifest.from_dict(data)
    assert parsed.engines["generator"].profile["c"].max == (4, 768, 4096)
    assert Manifest.from_dict(parsed.to_dict()) == parsed
    engine["profile"]["c"]["opt"] = [1, 768, 8192]
    with pytest.raises(ManifestError, match="min <= opt <= max"):
        Manifest.from_dict(data)


def _write_files(folder: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (folder / name).write_bytes(data)


def test_verify_files_catches_changed_and_missing_files(tmp_path):
    manifest = make_manifest(FILES)
    _write_files(tmp_path, FILES)
    verify_files(tmp_path, manifest)
    (tmp_path / "pitch.onnx").write_bytes(b"pitch graph bytez")
    with pytest.raises(BundleIntegrityError, match="pitch.onnx: graph pitch is corrupted"):
        verify_files(tmp_path, manifest)
    (tmp_path / "pitch.onnx").unlink()
    with pytest.raises(BundleIntegrityError, match="pitch.onnx: graph pitch listed in manifest.json is missing"):
        verify_files(tmp_path, manifest)


def test_staging_replaces_an_old_bundle_atomically(tmp_path):
    pytest.importorskip("torch")
    from svc_export.bundle_writer import BundleStaging

    target = tmp_path / "bundle"
    with BundleStaging(target) as stage:
        _write_files(stage.path, FILES)
        (stage.path / "leftover.cache").write_bytes(b"not listed")
        stage.commit(make_manifest(FILES))
    assert sorted(p.name for p in target.iterdir()) == ["generator.onnx", "manifest.json", "pitch.onnx"]

    newer = {"generator.onnx": b"new generator", "pitch.onnx": b"new pitch"}
    with pytest.raises(RuntimeError, match="export failed"):
        with BundleStaging(target) as stage:
            _write_files(stage.path, newer)
            raise RuntimeError("export failed half way")
    assert (target / "generator.onnx").read_bytes() == FILES["generator.onnx"]  # old bundle untouched

    with BundleStaging(target) as stage:
        _write_files(stage.path, newer)
        stage.commit(make_manifest(newer))
    assert (target / "generator.onnx").read_bytes() == b"new generator"
    assert Manifest.read(target) == make_manifest(newer)
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]  # no staging or backup folders left


def test_commit_refuses_a_manifest_whose_files_do_not_match(tmp_path):
    pytest.importorskip("torch")
    from svc_export.bundle_writer import BundleStaging

    target = tmp_path / "bundle"
    with pytest.raises(BundleIntegrityError, match="generator.onnx"):
        with BundleStaging(target) as stage:
            _write_files(stage.path, {"generator.onnx": b"other bytes", "pitch.onnx": FILES["pitch.onnx"]})
            stage.commit(make_manifest(FILES))
    assert not target.exists() and list(tmp_path.iterdir()) == []
