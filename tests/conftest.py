"""Shared pytest fixtures."""

from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="module")
def single_thread():
    """One torch thread for the whole test module, restored afterwards (small tensors on a shared CPU).

    Opt in per module with ``pytestmark = pytest.mark.usefixtures("single_thread")``.
    """
    import torch  # imported here: the conftest of svc_runtime's torch-free tests must not load torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def small_generator_onnx(tmp_path_factory):
    """The `sovits41_small` generator exported to ONNX as traced (1-D convolutions, no graph pass):
    `(plan, path)`. Tests that rewrite it copy the file first."""
    import torch

    from svc_export.onnx_export import export_onnx
    from svc_export.plans import generator_plan
    from svc_train.checkpoint import load_generator
    from svc_train.config import SvcConfig

    small = FIXTURES / "sovits41_small"
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    config = SvcConfig.load(small / "config.json")
    plan = generator_plan(load_generator(small / "G_1.pth", small / "config.json"), config.model.n_speakers)
    path = tmp_path_factory.mktemp("small_generator") / "generator.1d.onnx"
    export_onnx(plan, path)
    torch.set_num_threads(previous)
    return plan, path
