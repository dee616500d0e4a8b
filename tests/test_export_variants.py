"""The other so-vits-svc 4.1 generator options export and match PyTorch too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

SMALL = Path(__file__).parent / "fixtures" / "sovits41_small"


def _export(tmp_path: Path, **model_changes):
    from svc_export.exporter import ExportRequest, export_bundle
    from svc_train.checkpoint import build_generator, save_checkpoint
    from svc_train.config import SvcConfig

    torch.set_num_threads(1)
    config = SvcConfig.load(SMALL / "config.json").replace_model(**model_changes)
    (tmp_path / "config.json").write_text(json.dumps(config.to_dict()))
    torch.manual_seed(0)
    model = build_generator(tmp_path / "config.json")
    with torch.no_grad():  # move every weight off its initial value so each sub-module shapes the output
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    save_checkpoint(tmp_path / "G_0.pth", model, iteration=0, learning_rate=1e-4)
    request = ExportRequest(checkpoint=tmp_path / "G_0.pth", config=tmp_path / "config.json",
                            output=tmp_path / "bundle", simplify=False)
    return export_bundle(request)


def test_transformer_flow_depthwise_resblock2_volume(tmp_path):
    manifest = _export(
        tmp_path, use_transformer_flow=True, flow_share_parameter=True, use_depthwise_conv=True, resblock="2",
        resblock_dilation_sizes=[[1, 3], [1, 3], [1, 3]], vol_embedding=True, use_automatic_f0_prediction=False,
        ssl_dim=64, upsample_initial_channel=32,
    )
    records = manifest.graphs["generator"].parity
    assert len({r.length for r in records}) == 3
    assert all(r.max_abs_error < 1e-4 for r in records), records
    assert manifest.graphs["generator"].inputs[-1].name == "vol"
