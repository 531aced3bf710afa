"""Fixtures for the transfer tests: two small LeNet-5 runs trained once per session.

Cheap recipes (translation-only augmentation, few epochs) keep the folder near a minute on two CPU
cores; the benchmark (benchmarks/transfer_demo.py) runs the full-size versions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import cnnkit
from cnnkit.transfer import subset_spec

FAST = {"augment": "translate=2", "quiet": True}


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """One intra-op thread for these tiny models: with two threads on a shared 2-core machine, OpenMP
    synchronisation made each LeNet step ~10x slower (measured 0.2-0.5 s vs 25 ms per batch of 64)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    with single_thread():
        yield


@pytest.fixture(scope="session")
def transfer_runs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("transfer_runs")


@pytest.fixture(scope="session")
def source_04(transfer_runs) -> Path:
    """LeNet-5 trained on digits 0-4 only: the source network of the transfer demo."""
    data = subset_spec("digits", classes=[0, 1, 2, 3, 4])
    with single_thread():  # session fixtures are set up before the function-scoped one_thread
        return cnnkit.train(data=data, name="src04", runs_dir=str(transfer_runs), epochs=12, **FAST).run_dir


@pytest.fixture(scope="session")
def digits_run(transfer_runs) -> Path:
    """LeNet-5 trained on all ten digits (the retrieval tests' feature extractor)."""
    with single_thread():
        return cnnkit.train(name="digits10", runs_dir=str(transfer_runs), epochs=8, **FAST).run_dir
