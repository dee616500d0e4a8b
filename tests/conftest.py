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
