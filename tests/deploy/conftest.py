"""Fixtures of the deployment tests: short runs on digits (one epoch each), a live server, test images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

# Which runs the export acceptance covers. ResNet-20 and MobileNet train at 16x16 (MobileNet at
# width 0.25) so one epoch stays a few seconds on two CPU cores; the export path is the same.
RUN_SPECS = {
    "lenet5": {"model": "lenet5"},
    "resnet20": {"model": "resnet20", "input_size": 16},
    "mobilenet_v1": {"model": "mobilenet_v1", "model_args": {"width_mult": 0.25}, "input_size": 16},
}


@pytest.fixture(scope="session")
def deploy_runs(tmp_path_factory):
    """``get(name) -> run folder``: each run trained once per session, when first asked for."""
    import cnnkit

    root = tmp_path_factory.mktemp("deploy_runs")
    made: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in made:
            r = cnnkit.train(epochs=1, name=name, runs_dir=str(root), quiet=True, **RUN_SPECS[name])
            made[name] = Path(r.run_dir)
        return made[name]

    return get


@pytest.fixture(scope="session")
def lenet_run(deploy_runs) -> Path:
    return deploy_runs("lenet5")


@pytest.fixture(scope="session")
def digit_files(tmp_path_factory) -> list[Path]:
    """Three digits from scikit-learn's set as 32x32 PNG files (bright ink on black, like training)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    out = tmp_path_factory.mktemp("digits")
    files = []
    for i in range(3):
        a = (d.images[i] * 255 / 16).clip(0, 255).astype(np.uint8)
        f = out / f"digit{i}_{d.target[i]}.png"
        Image.fromarray(a).resize((32, 32), Image.BILINEAR).save(f)
        files.append(f)
    return files
