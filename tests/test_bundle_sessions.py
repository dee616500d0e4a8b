"""ONNX Runtime session settings from `ProviderConfig`: thread spinning off on the CPU by default."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from svc_runtime.bundle.sessions import OrtSession, ProviderConfig

SPIN_KEYS = ("session.intra_op.allow_spinning", "session.inter_op.allow_spinning")


@pytest.fixture()
def tiny_graph(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n"])],
    )
    path = tmp_path / "relu.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def _entry(session: OrtSession, key: str) -> str | None:
    options = session._session.get_session_options()
    try:
        return options.get_session_config_entry(key)
    except RuntimeError:  # ONNX Runtime raises for a key that was never set
        return None


def test_cpu_sessions_do_not_spin_by_default(tiny_graph):
    config = ProviderConfig(intra_op_threads=2)
    assert config.spinning is False
    assert config.session_config_entries() == {key: "0" for key in SPIN_KEYS}
    session = OrtSession("relu", tiny_graph, config)
    assert [_entry(session, key) for key in SPIN_KEYS] == ["0", "0"]
    out = session.run({"x": np.array([-1.0, 2.0], np.float32)})["y"]
    np.testing.assert_array_equal(out, [0.0, 2.0])


def test_spinning_can_be_turned_back_on(tiny_graph):
    config = ProviderConfig(allow_spinning=True)
    assert config.spinning is True and config.session_config_entries() == {}
    session = OrtSession("relu", tiny_graph, config)
    assert [_entry(session, key) for key in SPIN_KEYS] == [None, None]  # ONNX Runtime's default: spin


def test_gpu_providers_keep_onnx_runtime_spinning_unless_told():
    assert ProviderConfig(provider="cuda").spinning is True
    assert ProviderConfig(provider="tensorrt", allow_spinning=False).session_config_entries() == {
        key: "0" for key in SPIN_KEYS
    }
