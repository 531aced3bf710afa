"""Fixtures of the lecture tests: a spatial-transformer run (one epoch, made once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def stn_run(tmp_path_factory) -> Path:
    """``stn_lenet5`` trained on digits for one epoch: enough to load, explain and refuse."""
    import cnnkit

    runs = tmp_path_factory.mktemp("stn-runs")
    return cnnkit.train(model="stn_lenet5", epochs=1, runs_dir=str(runs), name="stn", quiet=True).run_dir
