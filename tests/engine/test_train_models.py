"""Issue 4, acceptance 4: deeper lecture models train on digits at 32 px with `cnnkit train`'s
defaults (each model's recipe included) and beat the linear classifier."""

from __future__ import annotations

import pytest

import cnnkit


@pytest.fixture(scope="module")
def linear_accuracy(tmp_path_factory) -> float:
    runs = tmp_path_factory.mktemp("runs")
    return cnnkit.train(model="linear", name="linear", runs_dir=str(runs), epochs=6, quiet=True).test_accuracy


@pytest.mark.slow
@pytest.mark.parametrize(("name", "epochs"), [("resnet20", 6), ("vgg11_bn", 4)])
def test_model_beats_linear_on_digits(name: str, epochs: int, linear_accuracy: float, tmp_path) -> None:
    result = cnnkit.train(model=name, name=name, runs_dir=str(tmp_path), epochs=epochs, quiet=True)
    config = result.run_dir.joinpath("config.yaml").read_text()
    assert "input_size: 32" in config  # small stem, not 224 px
    if name == "vgg11_bn":
        # Its recipe's warmup is what makes it train at the default lr (without it: ~20% here).
        assert "warmup_epochs: 1.0" in config
        log = " ".join(result.run_dir.joinpath("log.txt").read_text().split())  # the header pads its columns
        assert "1 warmup epoch(s) [" in log and "warmup-epochs: vgg11_bn's recipe" in log
    assert result.test_accuracy > linear_accuracy, (result.test_accuracy, linear_accuracy)
