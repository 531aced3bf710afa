"""Shared fixtures: a trained digits run (made once per session), small helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """LeNet-5 trained on digits with the default recipe (the README's command, ~10 s)."""
    import cnnkit

    runs = tmp_path_factory.mktemp("runs")
    result = cnnkit.train(name="lenet5-digits", runs_dir=str(runs), quiet=True)
    return result.run_dir


@pytest.fixture
def runs_dir(tmp_path) -> str:
    return str(tmp_path / "runs")
