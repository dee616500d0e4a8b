"""Graphs past protobuf's 2 GiB limit (Whisper large's encoder) keep their weights in an ONNX external
data file beside the graph. With the threshold forced low, a small random whisper-ppg model goes out
that way: the bundle loads and converts exactly as the same bundle exported self-contained, the
manifest names each data file and its sha256, and a missing or damaged data file is refused with one
line naming it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")

from svc_runtime.errors import BundleError  # noqa: E402

pytestmark = pytest.mark.usefixtures("single_thread")

SMALL = Path(__file__).parent / "fixtures" / "sovits41_small"
D_MODEL = 64
THRESHOLD = 64 << 10
"""64 KiB: the speech encoder (~0.5 MB), converter and generator graphs all pass it."""
SR = 16000


def _whisper_checkpoint(path: Path) -> Path:
    """A small random whisper-ppg encoder in OpenAI's form (dims + model_state_dict)."""
    from svc_train.encoders.whisper import WhisperAudioEncoder, WhisperConfig

    config = WhisperConfig(n_mels=80, n_ctx=50, d_model=D_MODEL, n_heads=4, n_layers=2, ffn_dim=4 * D_MODEL)
    torch.manual_seed(1)
    encoder = WhisperAudioEncoder(config)
    with torch.no_grad():
        for name, parameter in encoder.named_parameters():
            if name.endswith("ln.weight") or name.startswith("ln_post.weight"):
                parameter.normal_(1.0, 0.1)
            else:
                parameter.normal_(0.0, 0.15 if parameter.dim() > 1 else 0.05)
    dims = {"n_mels": 80, "n_audio_ctx": 50, "n_audio_state": D_MODEL, "n_audio_head": 4, "n_audio_layer": 2,
            "n_vocab": 64, "n_text_ctx": 16, "n_text_state": D_MODEL, "n_text_head": 2, "n_text_layer": 1}
    state = {f"encoder.{k}": v for k, v in encoder.state_dict().items()}
    torch.save({"dims": dims, "model_state_dict": state}, path)
    return path


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> tuple[Path, Path]:
    """(self-contained bundle, the same export with external data), from one checkpoint."""
    from svc_export.exporter import ExportRequest, export_bundle
    from svc_train.checkpoint import build_generator, save_checkpoint
    from svc_train.config import SvcConfig

    root = tmp_path_factory.mktemp("external")
    config = SvcConfig.load(SMALL / "config.json").replace_model(speech_encoder="whisper-ppg", ssl_dim=D_MODEL)
    (root / "config.json").write_text(json.dumps(config.to_dict()))
    torch.manual_seed(0)
    model = build_generator(root / "config.json")
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    save_checkpoint(root / "G_0.pth", model, iteration=0, learning_rate=1e-4)
    encoder = _whisper_checkpoint(root / "medium.pt")
    out = []
    for name, threshold in (("inline", None), ("external", THRESHOLD)):
        extra = {} if threshold is None else {"external_data_threshold": threshold}
        request = ExportRequest(checkpoint=root / "G_0.pth", config=root / "config.json", output=root / name,
                                encoder_checkpoint=encoder, simplify=False, **extra)
        export_bundle(request)
        out.append(root / name)
    return out[0], out[1]


def _phrase(seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    f0 = 220.0 * (1 + 0.02 * np.sin(2 * np.pi * 5 * t))
    wave = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / SR) / k for k in range(1, 5))
    return (0.3 * wave * np.minimum(1.0, 4 * t)).astype(np.float32)


def test_manifest_names_each_data_file_and_its_hash(bundles):
    from svc_runtime.bundle.bundle import sha256_of
    from svc_runtime.bundle.manifest import Manifest

    inline, external = bundles
    raw = json.loads((inline / "manifest.json").read_text())
    assert all("data_file" not in g and "data_sha256" not in g for g in raw["graphs"].values())
    assert sorted(p.name for p in inline.iterdir() if p.suffix == ".data") == []

    manifest = Manifest.read(external)
    encoder = manifest.graphs["speech_encoder"]
    assert encoder.data_file == "speech_encoder.onnx.data"
    assert encoder.data_sha256 == sha256_of(external / encoder.data_file)
    on_disk = sorted(p.name for p in external.iterdir() if p.suffix == ".data")
    assert on_disk == sorted(g.data_file for g in manifest.graphs.values() if g.data_file)
    for g in manifest.graphs.values():  # every graph passes 64 KiB here; each has its own data file
        assert g.data_file == f"{g.file}.data"
        data_bytes = (external / g.data_file).stat().st_size
        assert data_bytes > THRESHOLD, g.file  # the weights; Constant nodes (the mel front end's DFT) stay inline
        assert (external / g.data_file).stat().st_mode & 0o777 == (external / g.file).stat().st_mode & 0o777
        proto = onnx.load(str(external / g.file), load_external_data=False)
        locations = {e.value for t in proto.graph.initializer for e in t.external_data if e.key == "location"}
        assert locations == {g.data_file}
    assert ("graph speech_encoder's external data", "speech_encoder.onnx.data", encoder.data_sha256) in \
        manifest.files()


def test_external_bundle_converts_exactly_as_the_inline_one(bundles):
    from svc_runtime import Bundle
    from svc_runtime.pipeline.convert import Converter
    from svc_runtime.pipeline.options import ConvertOptions

    inline, external = (Bundle.load(path) for path in bundles)
    wav = _phrase()
    units = [b.encode_units(wav) for b in (inline, external)]
    assert units[0].shape == (1, D_MODEL, wav.size // 320)
    assert np.abs(units[0] - units[1]).max() <= 1e-6
    audio = [np.asarray(Converter(b, ConvertOptions(speaker="alice", f0_method="pm")).convert(wav, SR))
             for b in (inline, external)]
    assert audio[0].shape == audio[1].shape and np.abs(audio[0]).max() > 0
    assert np.abs(audio[0] - audio[1]).max() <= 1e-6


def test_info_shows_the_data_file(bundles):
    from typer.testing import CliRunner

    from svc_runtime.cli import app

    result = CliRunner().invoke(app, ["info", str(bundles[1])], env={"COLUMNS": "250", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    assert "speech_encoder.onnx + speech_encoder.onnx.data" in result.output


@pytest.fixture
def copy(bundles, tmp_path) -> Path:
    target = tmp_path / "bundle"
    shutil.copytree(bundles[1], target)
    return target


def _one_line_error(path: Path, **load) -> str:
    from svc_runtime import Bundle

    with pytest.raises(BundleError) as caught:
        Bundle.load(path, **load)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_missing_data_file_is_refused_naming_it(copy):
    (copy / "speech_encoder.onnx.data").unlink()
    message = _one_line_error(copy)
    assert "speech_encoder.onnx.data" in message and "missing" in message
    message = _one_line_error(copy, verify=False)  # the graph check finds it too, without hashing
    assert "speech_encoder.onnx.data" in message and "missing" in message


def test_corrupted_data_file_is_refused_naming_it(copy):
    data = copy / "speech_encoder.onnx.data"
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    data.write_bytes(bytes(raw))
    message = _one_line_error(copy)
    assert "speech_encoder.onnx.data" in message and "sha256" in message


def test_manifest_must_agree_with_the_graphs_data_location(copy):
    path = copy / "manifest.json"
    manifest = json.loads(path.read_text())
    entry = manifest["graphs"]["speech_encoder"]
    del entry["data_file"], entry["data_sha256"]
    path.write_text(json.dumps(manifest))
    message = _one_line_error(copy)
    assert "speech_encoder.onnx" in message and "speech_encoder.onnx.data" in message


def test_data_file_fields_go_together(copy):
    from svc_runtime.bundle.manifest import Manifest, ManifestError

    path = copy / "manifest.json"
    manifest = json.loads(path.read_text())
    del manifest["graphs"]["speech_encoder"]["data_sha256"]
    path.write_text(json.dumps(manifest))
    with pytest.raises(ManifestError, match="data_file and data_sha256"):
        Manifest.read(copy)


def test_passes_keep_external_data(tmp_path):
    """onnxslim, the fp16 copy and the conv passes load a graph with external data and save it so again."""
    from svc_export.fp16 import convert_to_fp16
    from svc_export.graph_files import data_file_of
    from svc_export.onnx_export import convs_as_2d, export_onnx, graph_parity, simplify_onnx, torch_parity
    from svc_export.plans import speech_encoder_plan
    from svc_train import load_content_encoder

    encoder = load_content_encoder("whisper-ppg", _whisper_checkpoint(tmp_path / "medium.pt"))
    plan = speech_encoder_plan(encoder, D_MODEL)
    path = tmp_path / "speech_encoder.onnx"
    assert export_onnx(plan, path, external_data_threshold=THRESHOLD) == tmp_path / "speech_encoder.onnx.data"
    simplify_onnx(path)
    convs_as_2d(path)
    assert data_file_of(path) == tmp_path / "speech_encoder.onnx.data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["medium.pt", "speech_encoder.onnx",
                                                          "speech_encoder.onnx.data"]
    results = torch_parity(plan, path)
    assert all(r.ok for r in results), results
    half = tmp_path / "speech_encoder.fp16.onnx"
    convert_to_fp16(path, half, tuple(plan.meta.get("fp32_scopes") or ()))
    assert data_file_of(half) == tmp_path / "speech_encoder.fp16.onnx.data"
    tolerance = {s.name: 0.5 for s in plan.outputs}
    assert all(r.ok for r in graph_parity(plan, half, path, "fp32", tolerance))


def test_int8_copies_of_graphs_with_external_data(copy):
    """int8 quantization reads the fp32 graphs with their data files; its graphs (a quarter of the size)
    come back self-contained below the default threshold, and the bundle verifies and loads with them."""
    from svc_export.int8 import add_int8_to_bundle
    from svc_runtime import Bundle
    from svc_runtime.bundle.manifest import Manifest

    add_int8_to_bundle(copy)
    manifest = Manifest.read(copy)
    int8 = {name: g for name, g in manifest.graphs.items() if g.precision == "int8"}
    assert "speech_encoder_int8" in int8
    assert all(g.data_file is None for g in int8.values())
    listed = {f for _, f, _ in manifest.files()} | {"manifest.json"}
    assert sorted(p.name for p in copy.iterdir() if p.name not in listed) == []
    bundle = Bundle.load(copy, precision="int8")
    units = bundle.encode_units(_phrase(0.5))
    assert units.shape == (1, D_MODEL, 25) and np.isfinite(units).all()


def _matmul_model() -> onnx.ModelProto:
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32), "w")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"]), helper.make_node("Cast", ["y"], ["z"], to=10)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 64])],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT16, None)], [weight])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_type_inference_past_the_limit_leaves_weights_out(monkeypatch):
    """Past 2 GiB the passes infer types on a copy without the weights' data (forced here on a small model)."""
    from svc_export import graph_files

    model = _matmul_model()
    whole = graph_files.infer_shapes(model)
    monkeypatch.setattr(graph_files, "EXTERNAL_DATA_THRESHOLD", 16)
    light = graph_files.infer_shapes(model)
    types = [{v.name: v.type.tensor_type.elem_type for v in m.graph.value_info} for m in (whole, light)]
    assert types[0] == types[1] == {"y": onnx.TensorProto.FLOAT}
    assert len(model.graph.initializer[0].raw_data) == 64 * 64 * 4  # the model itself keeps its weights


def test_a_pass_that_cannot_run_says_so(tmp_path, monkeypatch):
    """onnxslim failing on a graph with external data is a recorded skip, the graph kept as it was;
    on a self-contained graph the failure stays an error."""
    import onnxslim
    from google.protobuf.message import EncodeError

    from svc_export.graph_files import entry_files, save_graph
    from svc_export.onnx_export import PassSkipped, simplify_onnx

    def refuse(model, *args, **kwargs):
        raise EncodeError("Failed to serialize proto")

    monkeypatch.setattr(onnxslim, "slim", refuse)
    external, inline = tmp_path / "big.onnx", tmp_path / "small.onnx"
    save_graph(_matmul_model(), external, external=True)
    save_graph(_matmul_model(), inline, external=False)
    before = entry_files(external)
    assert before["data_file"] == "big.onnx.data"
    with pytest.raises(PassSkipped, match="onnxslim cannot simplify big.onnx with external data"):
        simplify_onnx(external)
    assert entry_files(external) == before
    with pytest.raises(EncodeError):
        simplify_onnx(inline)
