"""The nsf-snake-hifigan decoder (anti-aliased SnakeBeta) exports to ONNX and matches PyTorch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

SMALL = Path(__file__).parent / "fixtures" / "sovits41_small"
AUDIO_TOLERANCE = 1e-3
CHECK_FRAMES = (5, 23, 61)  # not the exporter's own parity lengths


def _snake_model(tmp_path: Path, **model_changes):
    from svc_train.checkpoint import build_generator, save_checkpoint
    from svc_train.config import SvcConfig

    torch.set_num_threads(1)
    config = SvcConfig.load(SMALL / "config.json").replace_model(
        vocoder_name="nsf-snake-hifigan", upsample_initial_channel=32, **model_changes)
    (tmp_path / "config.json").write_text(json.dumps(config.to_dict()))
    torch.manual_seed(0)
    model = build_generator(tmp_path / "config.json")
    with torch.no_grad():  # move every weight (snake alpha/beta included) off its initial value
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    save_checkpoint(tmp_path / "G_0.pth", model, iteration=0, learning_rate=1e-4)
    return model.eval()


def _export(tmp_path: Path):
    from svc_export.exporter import ExportRequest, export_bundle

    request = ExportRequest(checkpoint=tmp_path / "G_0.pth", config=tmp_path / "config.json",
                            output=tmp_path / "bundle", simplify=False)
    return export_bundle(request)


@pytest.mark.parametrize("resblock, dilations", [("2", [[1, 3]] * 3), ("1", [[1, 3, 5]] * 3)])
def test_snake_generator_matches_torch_in_onnx_runtime(tmp_path, resblock, dilations):
    from svc_export.graphs import GeneratorGraph
    from svc_export.plans import generator_plan
    from svc_train.models.nsf_snake_hifigan import NsfSnakeHifiGan

    model = _snake_model(tmp_path, resblock=resblock, resblock_dilation_sizes=dilations)
    assert isinstance(model.dec, NsfSnakeHifiGan)
    manifest = _export(tmp_path)

    records = manifest.graphs["generator"].parity
    assert len({r.length for r in records}) == 3
    assert all(r.output == "audio" and r.max_abs_error <= AUDIO_TOLERANCE for r in records), records

    # Independent check: the bundle's graph against the checkpoint's model (weight norm kept) at new lengths.
    plan = generator_plan(model, model.config.n_speakers)
    graph = GeneratorGraph(model).eval()
    session = ort.InferenceSession(str(tmp_path / "bundle" / manifest.graphs["generator"].file),
                                   providers=["CPUExecutionProvider"])
    names = [s.name for s in plan.inputs]
    assert [i.name for i in session.get_inputs()] == names
    for seed, frames in enumerate(CHECK_FRAMES, start=7):
        inputs = plan.make_inputs(frames, seed)
        with torch.no_grad():
            want = graph(*(inputs[n] for n in names)).numpy()
        (got,) = session.run(["audio"], {n: inputs[n].numpy() for n in names})
        assert got.shape == want.shape == (want.shape[0], 1, frames * model.hop)
        assert float(np.sqrt(np.mean(want.astype(np.float64) ** 2))) > 1e-3  # real audio, not silence
        error = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64))))
        assert error <= AUDIO_TOLERANCE, f"{frames} frames: max abs error {error}"


def test_antialias_filters_have_static_channel_count():
    """The depthwise kernels are sized at construction; the filter buffers keep so-vits-svc's [1, 1, 12]."""
    from svc_train.models.nsf_snake_hifigan import SnakeAlias

    act = SnakeAlias(6)
    assert act.upsample.channels == act.downsample.lowpass.channels == 6
    state = act.state_dict()
    assert sorted(state) == ["act.alpha", "act.beta", "downsample.lowpass.filter", "upsample.filter"]
    assert state["upsample.filter"].shape == state["downsample.lowpass.filter"].shape == (1, 1, 12)
    assert act(torch.randn(2, 6, 9)).shape == (2, 6, 9)
    with pytest.raises(RuntimeError):
        act(torch.randn(2, 5, 9))  # a channel count other than the constructed one is refused
