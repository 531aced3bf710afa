"""Fixtures of the evaluation tests: two short extra runs (ensembles, compare) on the digits split."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def short_runs(tmp_path_factory) -> list[Path]:
    """Two quick runs of other models on the same digits split as ``trained_run`` (same seed and fractions).

    Different models on purpose: the ensemble then averages models that see different input sizes
    (LeNet-1 is built for 28x28, the data is 32x32) and ``compare`` gets three distinct points.
    """
    import cnnkit

    runs = tmp_path_factory.mktemp("short_runs")
    out = []
    for model in ("lenet1", "linear"):
        r = cnnkit.train(model=model, epochs=2, name=f"{model}-digits", runs_dir=str(runs), quiet=True)
        out.append(r.run_dir)
    return out

