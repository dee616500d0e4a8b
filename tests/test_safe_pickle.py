"""The allow-list unpickler: refuses code-running globals, turns configs into plain data."""

from __future__ import annotations

import argparse
import enum
import os
import pickle
import sys
import types
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from svc_train.safe_pickle import PickledObject, UnsafePickleError, load_checkpoint, loads


class _RunsShell:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _CallsEval:
    def __reduce__(self):
        return (eval, ("__import__('os').getcwd()",))


def test_os_system_payload_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"model": {"w": torch.zeros(2)}, "cfg": _RunsShell(marker)}, path)
    with pytest.raises(UnsafePickleError, match=r"posix\.system|nt\.system") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)
    assert not marker.exists()


def test_eval_payload_in_plain_pickle_is_refused():
    with pytest.raises(UnsafePickleError, match=r"builtins\.eval"):
        loads(pickle.dumps({"a": _CallsEval()}, protocol=2))


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_payload_refused_at_every_protocol(tmp_path, protocol):
    marker = tmp_path / "pwned"
    with pytest.raises(UnsafePickleError):
        loads(pickle.dumps([_RunsShell(marker)], protocol=protocol))
    assert not marker.exists()


def test_unknown_class_is_refused_by_name():
    with pytest.raises(UnsafePickleError, match=r"pathlib\.PosixPath|pathlib\.WindowsPath|pathlib\._local"):
        loads(pickle.dumps(Path("/tmp"), protocol=2))


def test_plain_data_and_tensors_survive(tmp_path):
    data = {
        "model": OrderedDict(w=torch.arange(6.0).reshape(2, 3), b=torch.ones(3, dtype=torch.float16)),
        "plain": [1, 2.5, "x", None, True, (1, 2), {3, 4}, b"bytes", torch.bfloat16],
        "args": argparse.Namespace(encoder_layers=12, conv_feature_layers="[(512,10,5)]"),
    }
    path = tmp_path / "ck.pt"
    torch.save(data, path)
    loaded = load_checkpoint(path)
    assert torch.equal(loaded["model"]["w"], data["model"]["w"])
    assert loaded["model"]["b"].dtype == torch.float16
    assert loaded["plain"] == data["plain"]
    assert loaded["args"] == {"encoder_layers": 12, "conv_feature_layers": "[(512,10,5)]"}


def test_omegaconf_fixture_reads_as_plain_dict(fixtures_dir):
    folder = fixtures_dir / "contentvec_small"
    with pytest.raises(pickle.UnpicklingError):
        torch.load(folder / "fairseq_checkpoint_omegaconf.pt", weights_only=True)
    from_omegaconf = load_checkpoint(folder / "fairseq_checkpoint_omegaconf.pt")
    from_dict = load_checkpoint(folder / "fairseq_checkpoint.pt")
    assert isinstance(from_omegaconf["cfg"], dict)
    assert from_omegaconf["cfg"] == from_dict["cfg"]
    assert from_omegaconf["cfg"]["model"]["latent_temp"] == [2.0, 0.5, 0.999995]
    assert set(from_omegaconf["model"]) == set(from_dict["model"])
    assert all(torch.equal(from_omegaconf["model"][k], from_dict["model"][k]) for k in from_dict["model"])


@contextmanager
def _fake_modules(**classes):
    """Put classes in fake modules (named by their __module__) so pickle can name them."""
    added = []
    for cls in classes.values():
        parts = cls.__module__.split(".")
        for depth in range(1, len(parts) + 1):
            name = ".".join(parts[:depth])
            if name not in sys.modules:
                sys.modules[name] = types.ModuleType(name)
                added.append(name)
        setattr(sys.modules[cls.__module__], cls.__qualname__, cls)
    try:
        yield
    finally:
        for name in added:
            del sys.modules[name]


def test_fairseq_objects_become_inert_records_and_enums_plain_values():
    Choices = enum.Enum("Choices", {"default": "default", "layer_norm": "layer_norm"})
    Choices.__module__ = "fairseq.dataclass.constants"

    Dictionary = type("Dictionary", (), {"__module__": "fairseq.data.dictionary"})

    AnyNode = type("AnyNode", (), {"__module__": "omegaconf.nodes"})

    DictConfig = type("DictConfig", (), {"__module__": "omegaconf.dictconfig"})

    node = AnyNode()
    node.__dict__.update(_val=Choices.layer_norm, _parent=None)
    config = DictConfig()
    config.__dict__.update(_content={"extractor_mode": node}, _parent=None)
    node._parent = config  # omegaconf nodes point back at their parent
    dictionary = Dictionary()
    dictionary.__dict__.update(symbols=["<s>", "<pad>"], count=[1, 1])
    with _fake_modules(Choices=Choices, Dictionary=Dictionary, AnyNode=AnyNode, DictConfig=DictConfig):
        data = pickle.dumps({"cfg": {"model": config}, "task_state": {"dictionaries": [dictionary]}}, protocol=2)
    from svc_train.safe_pickle import to_plain

    loaded = to_plain(loads(data))
    assert loaded["cfg"] == {"model": {"extractor_mode": "layer_norm"}}
    record = loaded["task_state"]["dictionaries"][0]
    assert isinstance(record, PickledObject)
    assert record.qualname == "fairseq.data.dictionary.Dictionary"
    assert record.state == {"symbols": ["<s>", "<pad>"], "count": [1, 1]}
    assert "fairseq" not in sys.modules


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        load_checkpoint(tmp_path / "nowhere.pt")
