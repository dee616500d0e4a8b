"""The "-onnx" speech encoders: a user's ONNX file as so-vits-svc's ContentVec*_Onnx feed it (input
[1, 1, samples], output [1, frames, dim]), run through ONNX Runtime for features and taken by svc-export
as the bundle's speech-encoder graph; files that do not fit are refused with the reason; a round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from svc_train import load_content_encoder
from svc_train.encoders import ENCODER_SPECS, CheckpointLayoutError, same_units

pytestmark = pytest.mark.usefixtures("single_thread")

FIXTURES = Path(__file__).parent / "fixtures"
CONTENTVEC = FIXTURES / "contentvec_small" / "fairseq_checkpoint.pt"  # tiny random ContentVec, 64-d last layer
DIM = 64


class _SoVitsLayout(torch.nn.Module):
    """A torch encoder with so-vits-svc's ONNX interface: source [1, 1, N] -> [1, frames, dim]
    (or [1, dim, frames] with ``channels_first``)."""

    def __init__(self, encoder: torch.nn.Module, channels_first: bool = False) -> None:
        super().__init__()
        self.encoder = encoder
        self.channels_first = channels_first

    def forward(self, source):
        units = self.encoder(source[:, 0])
        return units if self.channels_first else units.transpose(1, 2)


def export_sovits_onnx(path: Path, channels_first: bool = False, batch_axis: bool = False, opset: int = 17) -> Path:
    """contentvec_small as a vec-768-layer-12.onnx-like file (fixed batch 1 unless ``batch_axis``)."""
    encoder = load_content_encoder("vec768l12", CONTENTVEC)
    axes = {"source": {2: "audio_length"}, "embed": {1 if not channels_first else 2: "frames"}}
    if batch_axis:
        axes["source"][0] = axes["embed"][0] = "batch"
    torch.onnx.export(_SoVitsLayout(encoder, channels_first).eval(), (0.1 * torch.randn(1, 1, 16000),), str(path),
                      dynamo=False, input_names=["source"], output_names=["embed"], dynamic_axes=axes, opset_version=opset)
    return path


@pytest.fixture(scope="module")
def sovits_onnx(tmp_path_factory) -> Path:
    return export_sovits_onnx(tmp_path_factory.mktemp("onnx") / "vec-768-layer-12.onnx")


def _wave(batch: int, samples: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(samples)
    t = torch.arange(samples) / 16000.0
    return 0.2 * torch.sin(2 * np.pi * 210.0 * t).repeat(batch, 1) + 0.02 * torch.randn(batch, samples, generator=g)


def test_registry_names_every_sovits_onnx_variant():
    onnx_names = {name for name, spec in ENCODER_SPECS.items() if spec.kind == "onnx"}
    assert onnx_names == {"vec768l12-onnx", "vec768l9-onnx", "vec256l9-onnx", "vec256l12-onnx", "hubertsoft-onnx"}
    assert {name: ENCODER_SPECS[name].dim for name in onnx_names} == {
        "vec768l12-onnx": 768, "vec768l9-onnx": 768, "vec256l9-onnx": 256, "vec256l12-onnx": 256, "hubertsoft-onnx": 256}
    assert same_units("vec768l12-onnx", "vec768l12") and not same_units("vec768l12-onnx", "vec256l9")


def test_onnx_file_gives_the_torch_encoders_units(sovits_onnx):
    reference = load_content_encoder("vec768l12", CONTENTVEC)
    encoder = load_content_encoder("vec768l12-onnx", sovits_onnx)
    assert (encoder.dim, encoder.hop_size, encoder.layout.input_name, encoder.layout.time_axis) == (DIM, 320, "source", 1)
    assert encoder.layout.batch_fixed
    wav = _wave(2, 20000)
    with torch.no_grad():
        expected = reference(wav)
    units = encoder(wav)  # a fixed-batch graph runs item by item
    assert units.shape == expected.shape == (2, DIM, 62)
    assert (units - expected).abs().max() < 1e-4  # measured 4e-6
    # the torch name with an .onnx file is the same encoder
    assert torch.equal(load_content_encoder("vec768l12", sovits_onnx)(wav), units)


def test_channels_first_output_and_batch_axis_are_understood(tmp_path):
    path = export_sovits_onnx(tmp_path / "cf.onnx", channels_first=True, batch_axis=True)
    encoder = load_content_encoder("vec768l12-onnx", path)
    assert (encoder.layout.time_axis, encoder.layout.batch_fixed) == (2, False)
    wav = _wave(2, 9000)
    with torch.no_grad():
        expected = load_content_encoder("vec768l12", CONTENTVEC)(wav)
    assert (encoder(wav) - expected).abs().max() < 1e-4


def _graph_file(path: Path, inputs, outputs, nodes, initializers=()) -> Path:
    model = helper.make_model(helper.make_graph(nodes, "g", inputs, outputs, list(initializers)),
                              opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return path


def test_files_that_do_not_fit_are_refused_with_the_reason(tmp_path):
    wav3 = helper.make_tensor_value_info("source", TensorProto.FLOAT, [1, 1, "n"])
    # one frame per 160 samples (a 10 ms encoder): framed by a strided conv to 4 channels
    weight = helper.make_tensor("w", TensorProto.FLOAT, [4, 1, 160], np.ones(640, np.float32) / 160)
    conv = helper.make_node("Conv", ["source", "w"], ["c"], strides=[160])
    out = helper.make_tensor_value_info("embed", TensorProto.FLOAT, [1, "t", 4])
    transpose = helper.make_node("Transpose", ["c"], ["embed"], perm=[0, 2, 1])
    hop160 = _graph_file(tmp_path / "hop160.onnx", [wav3], [out], [conv, transpose], [weight])
    with pytest.raises(CheckpointLayoutError, match=r"hop160.onnx: gives 100 frames for 16000 samples.*one frame per 320"):
        load_content_encoder("vec768l12-onnx", hop160)

    two = _graph_file(tmp_path / "two.onnx", [wav3, helper.make_tensor_value_info("sr", TensorProto.FLOAT, [1])],
                      [helper.make_tensor_value_info("o", TensorProto.FLOAT, [1, 1, "n"])],
                      [helper.make_node("Mul", ["source", "sr"], ["o"])])
    with pytest.raises(CheckpointLayoutError, match="two.onnx: a speech encoder graph takes one input.*source, sr"):
        load_content_encoder("vec768l12-onnx", two)

    fixed = _graph_file(tmp_path / "fixed.onnx", [helper.make_tensor_value_info("source", TensorProto.FLOAT, [1, 1, 16000])],
                        [helper.make_tensor_value_info("o", TensorProto.FLOAT, [1, 1, 16000])],
                        [helper.make_node("Identity", ["source"], ["o"])])
    with pytest.raises(CheckpointLayoutError, match="fixed length of 16000 samples; re-export"):
        load_content_encoder("vec768l12-onnx", fixed)

    ints = _graph_file(tmp_path / "ints.onnx", [helper.make_tensor_value_info("source", TensorProto.INT16, [1, 1, "n"])],
                       [helper.make_tensor_value_info("o", TensorProto.INT16, [1, 1, "n"])],
                       [helper.make_node("Identity", ["source"], ["o"])])
    with pytest.raises(CheckpointLayoutError, match="tensor\\(int16\\); a speech encoder takes float32 audio"):
        load_content_encoder("vec768l12-onnx", ints)

    (tmp_path / "junk.onnx").write_bytes(b"not a graph at all")
    with pytest.raises(CheckpointLayoutError, match="junk.onnx: ONNX Runtime cannot load it"):
        load_content_encoder("vec768l12-onnx", tmp_path / "junk.onnx")
    with pytest.raises(ValueError, match="runs an ONNX graph"):
        load_content_encoder("vec768l12-onnx", CONTENTVEC)
    with pytest.raises(FileNotFoundError, match="vec-768-layer-12.onnx"):
        load_content_encoder("vec768l12-onnx", tmp_path / "nowhere.onnx")
    with pytest.raises(ValueError, match="is an ONNX graph; wavlmbase\\+ loads from"):
        load_content_encoder("wavlmbase+", hop160)


def test_onnx_encoder_cannot_be_traced(sovits_onnx):
    encoder = load_content_encoder("vec768l12-onnx", sovits_onnx)
    with pytest.raises(RuntimeError, match="cannot be traced"):
        torch.jit.trace(encoder, (_wave(1, 16000),))


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> tuple[Path, Path]:
    """A random generator for 64-d units (sovits41_small, ssl_dim 64)."""
    from svc_train.checkpoint import build_generator, save_checkpoint

    folder = tmp_path_factory.mktemp("tiny")
    config = json.loads((FIXTURES / "sovits41_small" / "config.json").read_text())
    config["model"]["ssl_dim"] = DIM
    (folder / "config.json").write_text(json.dumps(config))
    torch.manual_seed(0)
    save_checkpoint(folder / "G_0.pth", build_generator(folder / "config.json"), iteration=0, learning_rate=1e-4)
    return folder / "G_0.pth", folder / "config.json"


def test_export_takes_the_file_as_the_bundle_encoder(tiny_model, sovits_onnx, tmp_path):
    from svc_export.exporter import ExportRequest, export_bundle
    from svc_runtime import Bundle

    checkpoint, config = tiny_model
    records = {}
    manifest = export_bundle(
        ExportRequest(checkpoint=checkpoint, config=config, output=tmp_path / "bundle", encoder="vec768l12-onnx",
                      encoder_checkpoint=sovits_onnx, simplify=False),
        on_parity=lambda name, results: records.setdefault(name, results),
    )
    entry = manifest.graphs["speech_encoder"]
    assert [(s.name, s.shape) for s in entry.inputs] == [("wav", ("batch", "samples"))]
    assert [(s.name, s.shape) for s in entry.outputs] == [("units", ("batch", DIM, "frames"))]
    assert [r.length for r in entry.parity] == [16000, 21920, 6400]
    assert all(r.max_abs_error == 0.0 and r.reference == "source onnx file" for r in entry.parity)
    assert manifest.speech_encoder.name == "vec768l12-onnx" and manifest.speech_encoder.graph == "speech_encoder"
    graph = onnx.load(str(tmp_path / "bundle" / entry.file)).graph
    # so-vits-svc's file has a fixed batch of 1: it runs per item inside a Scan over the batch
    assert [n.op_type for n in graph.node] == ["Scan", "Transpose"]
    # no torch form to fuse, so converter_f0 is the file's graph fused in front of synthesis at the ONNX level
    fused = manifest.graphs["converter_f0"]
    synthesis = manifest.graphs["synthesis"]
    assert [s.name for s in fused.inputs] == ["wav16k"] + [s.name for s in synthesis.inputs if s.name != "units"]
    assert fused.outputs == synthesis.outputs and "converter" not in manifest.graphs
    assert {r.output for r in fused.parity} == {s.name for s in synthesis.outputs}
    assert all(r.max_abs_error <= r.tolerance / 10 for r in fused.parity), fused.parity
    bundle = Bundle.load(tmp_path / "bundle")
    wav = _wave(2, 21000)
    with torch.no_grad():
        expected = load_content_encoder("vec768l12", CONTENTVEC)(wav).numpy()
    assert np.abs(bundle.encode_units(wav.numpy()) - expected).max() < 1e-4


def test_export_refuses_a_file_of_the_wrong_width_before_writing(tiny_model, tmp_path):
    from svc_export.exporter import ExportInputError, ExportRequest, export_bundle
    from svc_train.checkpoint import save_checkpoint

    checkpoint, config = tiny_model
    raw = json.loads(config.read_text())
    raw["model"]["ssl_dim"] = 32
    (tmp_path / "config.json").write_text(json.dumps(raw))
    from svc_train.checkpoint import build_generator

    save_checkpoint(tmp_path / "G_0.pth", build_generator(tmp_path / "config.json"), iteration=0, learning_rate=1e-4)
    path = export_sovits_onnx(tmp_path / "vec.onnx")
    with pytest.raises(ExportInputError, match=r"vec.onnx: gives units of shape \[1, 64, \d+\].*needs \[B, 32"):
        export_bundle(ExportRequest(checkpoint=tmp_path / "G_0.pth", config=tmp_path / "config.json",
                                    output=tmp_path / "bundle", encoder_checkpoint=path, simplify=False))
    with pytest.raises(ExportInputError, match="trained with 'vec768l12'"):
        export_bundle(ExportRequest(checkpoint=checkpoint, config=config, output=tmp_path / "bundle",
                                    encoder="vec256l9-onnx", encoder_checkpoint=path, simplify=False))
    assert not (tmp_path / "bundle").exists()


@pytest.mark.timeout(300)
def test_round_trip_features_train_export_convert(tmp_path):
    from encoder_roundtrip import check_round_trip, round_trip

    path = export_sovits_onnx(tmp_path / "vec-768-layer-12.onnx")
    # so-vits-svc's config names the torch encoder; the user points it at the ONNX file
    check_round_trip(round_trip(tmp_path / "run", "vec768l12", path, DIM), "vec768l12", DIM)


def test_malicious_onnx_files_are_refused(tmp_path):
    """An ONNX file runs no Python, but it can point its weights at files outside its folder or name
    operators from a library it wants loaded: both are refused before anything reads or runs."""
    source = helper.make_tensor_value_info("source", TensorProto.FLOAT, [1, 1, "n"])
    out = helper.make_tensor_value_info("o", TensorProto.FLOAT, [1, 1, "n"])
    (tmp_path / "secret.bin").write_bytes(np.ones(4, np.float32).tobytes())
    folder = tmp_path / "models"
    folder.mkdir()
    for location in ("../secret.bin", str(tmp_path / "secret.bin")):
        weight = helper.make_tensor("w", TensorProto.FLOAT, [1], [0.0])
        weight.ClearField("float_data")
        weight.data_location = TensorProto.EXTERNAL
        for key, value in (("location", location), ("offset", "0"), ("length", "4")):
            entry = weight.external_data.add()
            entry.key, entry.value = key, value
        path = _graph_file(folder / "escape.onnx", [source], [out], [helper.make_node("Mul", ["source", "w"], ["o"])],
                           [weight])
        with pytest.raises(CheckpointLayoutError, match="escape.onnx: ONNX Runtime cannot load it"):
            load_content_encoder("vec768l12-onnx", path)
    custom = helper.make_model(
        helper.make_graph([helper.make_node("Run", ["source"], ["o"], domain="com.evil")], "g", [source], [out]),
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.evil", 1)])
    onnx.save(custom, str(folder / "custom.onnx"))
    with pytest.raises(CheckpointLayoutError, match="custom.onnx: ONNX Runtime cannot load it.*com.evil:Run"):
        load_content_encoder("vec768l12-onnx", folder / "custom.onnx")


class _UnitsConsumer(torch.nn.Module):
    """Stands in for the bundle's synthesis graph: (units [B, D, T], gain [1]) -> [B, T]."""

    def forward(self, units, gain):
        return torch.tanh(units).mean(dim=1) * gain


def test_encoder_file_fuses_in_front_of_a_units_graph(tmp_path):
    from svc_export.encoder_file import fuse_in_front, rewrite_encoder_graph
    from svc_train.encoders.onnx_file import open_session

    encoder = load_content_encoder("vec768l12-onnx", export_sovits_onnx(tmp_path / "vec.onnx", opset=13))
    rewrite_encoder_graph(encoder, tmp_path / "speech_encoder.onnx")
    torch.onnx.export(_UnitsConsumer(), (torch.randn(1, DIM, 30), torch.ones(1)), str(tmp_path / "synthesis.onnx"),
                      dynamo=False, input_names=["units", "gain"], output_names=["out"],
                      dynamic_axes={"units": {0: "batch", 2: "frames"}, "out": {0: "batch", 1: "frames"}},
                      opset_version=17)
    fuse_in_front(tmp_path / "speech_encoder.onnx", tmp_path / "synthesis.onnx", tmp_path / "converter_f0.onnx")
    fused = open_session(tmp_path / "converter_f0.onnx")
    assert [i.name for i in fused.get_inputs()] == ["wav16k", "gain"] and [o.name for o in fused.get_outputs()] == ["out"]
    assert onnx.load(str(tmp_path / "converter_f0.onnx")).opset_import[0].version == 17
    wav = _wave(1, 19000)
    got = fused.run(["out"], {"wav16k": wav.numpy(), "gain": np.array([2.0], np.float32)})[0]
    with torch.no_grad():
        expected = _UnitsConsumer()(load_content_encoder("vec768l12", CONTENTVEC)(wav), torch.tensor([2.0])).numpy()
    assert got.shape == expected.shape == (1, 59)
    assert np.abs(got - expected).max() < 1e-4
