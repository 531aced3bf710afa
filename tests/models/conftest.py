"""Fixtures for the model tests."""

from __future__ import annotations

import pytest
import torch


def _keep(tensor: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
    return tensor


@pytest.fixture
def no_init(monkeypatch: pytest.MonkeyPatch) -> None:
    """Skip weight initialisation while building models.

    For tests that only need shapes (parameter counts, minimum input sizes) or that overwrite every
    weight with a loaded state dict: drawing 100M+ random numbers for VGG would dominate their run time.
    The weights are then uninitialised memory, so outputs are meaningless until weights are loaded.
    """
    for name in dir(torch.nn.init):
        if name.endswith("_") and not name.startswith("_"):
            monkeypatch.setattr(torch.nn.init, name, _keep)


@pytest.fixture(autouse=True)
def _one_intra_op_thread():
    """Run these tests on one intra-op thread (restored afterwards).

    Measured on the shared 2-core machine with other jobs running: a batch-2 forward+backward of
    densenet201 at 32 px took 24 s with 2 threads and 1.0 s with 1; googlenet 5.8 s vs 0.3 s;
    resnet50 at 224 px 8.2 s vs 1.4 s. Small tensors gain nothing from splitting, and the threads
    spin waiting for each other whenever another process holds a core.
    """
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
