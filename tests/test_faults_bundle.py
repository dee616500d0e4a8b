"""Damaged bundles are refused at load with one clear line and exit code 2 (`svc-run convert` and
`svc-run info`): a corrupt graph whose sha256 was updated, a graph that is a link to another
file, a manifest that is not an object or is nested absurdly deep, and a manifest whose speakers,
channels, harmonics or tensor names disagree with its graphs."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
from typer.testing import CliRunner

from svc_runtime.bundle.bundle import Bundle
from svc_runtime.bundle.validate import MAX_JSON_DEPTH, json_depth, read_graph_header
from svc_runtime.cli import app
from svc_runtime.errors import BundleError
from tests.pipeline_fixture import SR, small_bundle_dir, vibrato_tone

runner = CliRunner()


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    copy = tmp_path / "bundle"
    shutil.copytree(small_bundle_dir(), copy)
    return copy


def edit_manifest(bundle: Path, change) -> None:
    path = bundle / "manifest.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=1))


def rehash(bundle: Path, graph: str) -> None:
    """Make the manifest's sha256 of `graph` match the file as it is now (damage that a hash cannot catch)."""
    digest = hashlib.sha256((bundle / f"{graph}.onnx").read_bytes()).hexdigest()
    edit_manifest(bundle, lambda m: m["graphs"][graph].__setitem__("sha256", digest))


def refused(bundle: Path, tmp_path: Path, pattern: str) -> None:
    """`svc-run convert` and `svc-run info` both exit 2 with one error line matching `pattern`, no traceback."""
    audio, _ = vibrato_tone(0.8)
    soundfile.write(tmp_path / "in.wav", audio, SR)
    for args in (["convert", str(tmp_path / "in.wav"), "-m", str(bundle), "-o", str(tmp_path / "out"),
                  "--speaker", "alice", "--f0-method", "pm"], ["info", str(bundle)]):
        result = runner.invoke(app, args)
        text = " ".join(result.output.split())
        assert result.exit_code == 2, (args[0], result.output)
        assert re.search(pattern, text), (args[0], text)
        assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception,
                                                                                            SystemExit)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_the_fixture_bundle_passes(bundle: Path):
    header = read_graph_header(bundle / "generator.onnx")
    assert [t.name for t in header.inputs] == ["c", "f0", "uv", "speaker", "noise_prior", "noise_scale", "phase",
                                                "sine_noise"]
    assert header.outputs[0].shape == ("batch", 1, "samples") and header.outputs[0].dtype == "float32"
    Bundle.load(bundle)


def test_corrupt_graph_with_matching_sha256(bundle: Path, tmp_path: Path):
    path = bundle / "generator.onnx"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated mid-weights
    rehash(bundle, "generator")
    refused(bundle, tmp_path, r"generator\.onnx: not an ONNX graph or damaged .*re-export the bundle")


def test_random_bytes_graph_with_matching_sha256(bundle: Path, tmp_path: Path):
    (bundle / "generator.onnx").write_bytes(os.urandom(4096))
    rehash(bundle, "generator")
    refused(bundle, tmp_path, r"generator\.onnx: not an ONNX graph")


def test_graph_that_is_a_link_to_another_file(bundle: Path, tmp_path: Path):
    (tmp_path / "notes.txt").write_text("not a graph\n" * 100)
    (bundle / "speech_encoder.onnx").unlink()
    (bundle / "speech_encoder.onnx").symlink_to(tmp_path / "notes.txt")
    rehash(bundle, "speech_encoder")
    refused(bundle, tmp_path, r"speech_encoder\.onnx: not an ONNX graph")
    (bundle / "speech_encoder.onnx").unlink()
    (bundle / "speech_encoder.onnx").symlink_to("/dev/zero")
    with pytest.raises(BundleError, match="not a regular file|missing"):
        Bundle.load(bundle, verify=False)


def test_manifest_that_is_not_an_object(bundle: Path, tmp_path: Path):
    (bundle / "manifest.json").write_text("[1, 2, 3]\n")
    refused(bundle, tmp_path, r"manifest\.json: the manifest must be a JSON object, got a JSON list")


def test_deeply_nested_manifest_is_refused_quickly(bundle: Path, tmp_path: Path):
    (bundle / "manifest.json").write_text("[" * 200_000 + "]" * 200_000)
    t0 = time.perf_counter()
    refused(bundle, tmp_path, rf"nested 200000 levels deep, at most {MAX_JSON_DEPTH}")
    assert time.perf_counter() - t0 < 10
    assert json_depth('{"a": "[[[[", "b": [[1]]}') == 3  # brackets inside strings do not count


@pytest.mark.parametrize("field, value, pattern", [
    ("n_speakers", 3, r"'speaker' axis 2 is 2, but model\.n_speakers is 3"),
    ("n_harmonics", 8, r"'phase' axis 2 is 9, but model\.n_harmonics is 8"),
    ("inter_channels", 192, r"'noise_prior' axis 1 is 32, but model\.inter_channels is 192"),
])
def test_model_sizes_that_disagree_with_the_graphs(bundle: Path, tmp_path: Path, field, value, pattern):
    edit_manifest(bundle, lambda m: m["model"].__setitem__(field, value))
    refused(bundle, tmp_path, r"manifest\.json disagrees with its graphs: .*" + pattern)


def test_hop_that_disagrees_with_the_graph_stops_before_any_file(bundle: Path, tmp_path: Path):
    edit_manifest(bundle, lambda m: m["model"].__setitem__("hop_length", 256))
    audio, _ = vibrato_tone(0.8)
    soundfile.write(tmp_path / "in.wav", audio, SR)
    result = runner.invoke(app, ["convert", str(tmp_path / "in.wav"), "-m", str(bundle), "-o", str(tmp_path / "out"),
                                 "--speaker", "alice", "--f0-method", "pm"])
    text = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert re.search(r"graph (\w+) \(\1\.onnx\) fails on a 16-frame probe shaped by the manifest "
                     r"\(hop 256\): .*re-export the bundle", text), text
    # found before any file (sessions opened at load) or at the first graph failure (lazily opened ones)
    assert "Traceback" not in result.output and not (tmp_path / "out" / "in.wav").exists()


def test_a_lazily_opened_graph_is_probed_at_its_first_failure(bundle: Path):
    from types import SimpleNamespace

    from svc_runtime.errors import ModelRunError
    from svc_runtime.pipeline.batch import BatchRunner
    from svc_runtime.pipeline.options import ConvertOptions

    edit_manifest(bundle, lambda m: m["model"].__setitem__("hop_length", 256))
    loaded = Bundle.load(bundle)
    loaded.sessions.clear()  # nothing open yet: the runner cannot probe at start
    runner = BatchRunner(SimpleNamespace(bundle=loaded, options=ConvertOptions()))
    role = next(r for r in ("converter_f0", "generator") if any(g.role == r for g in loaded.manifest.graphs.values()))
    session = loaded._open_role(role)  # opened by the first file, whose run then failed
    assert runner._bundle_problem(ValueError("not a graph failure")) is None
    problem = runner._bundle_problem(ModelRunError(session.name, "Attempting to broadcast an axis"))
    assert problem is not None and f"graph {session.name} ({session.name}.onnx) fails on a 16-frame probe" in problem
    assert runner._bundle_problem(ModelRunError(session.name, "again")) is None  # each graph is probed once


def test_probe_reports_the_graph_hop(bundle: Path):
    from svc_runtime.bundle.validate import probe_axes, probe_graph

    loaded = Bundle.load(bundle)
    entry = loaded.manifest.graphs["generator"]

    class HalfHop:  # a graph that returns 256 samples per frame
        name = "generator"

        def run(self, feeds):
            return {"audio": np.zeros((1, 1, feeds["c"].shape[2] * 256), np.float32)}

    with pytest.raises(BundleError, match=r"returns audio of shape 1x1x4096 for 16 frames, the manifest says "
                                          r"\[batch, 1, samples\] = 1x1x8192: 256 samples per frame, the "
                                          r"manifest's hop is 512"):
        probe_graph(HalfHop(), entry, loaded.manifest)
    probed = []
    for name, graph in loaded.manifest.graphs.items():  # the real graphs fit (those on the frame grid run)
        session = loaded._open_role(graph.role)
        if session is not None and session.name == name and probe_axes(graph, loaded.manifest) is not None:
            probe_graph(session, graph, loaded.manifest)
            probed.append(name)
    assert "generator" in probed


def test_tensor_specs_that_disagree_with_the_graph(bundle: Path, tmp_path: Path):
    def change(m):
        inputs = m["graphs"]["generator"]["inputs"]
        inputs[0]["name"] = "units"
        inputs[3]["shape"][2] = 4
        inputs[1]["dtype"] = "float16"

    edit_manifest(bundle, change)
    with pytest.raises(BundleError) as error:
        Bundle.load(bundle)
    text = str(error.value)
    for part in ("the graph has input 'c', which the manifest does not list",
                 "the manifest lists input 'units', which the graph does not have",
                 "input 'f0' is float32 in the graph, float16 in the manifest",
                 "input 'speaker' axis 2 is 2 in the graph, 4 in the manifest"):
        assert part in text, text
