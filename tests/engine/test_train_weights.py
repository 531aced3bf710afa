"""``cnnkit train --weights FILE``: a new run that starts from a state dict instead of a fresh initialisation."""

from __future__ import annotations

import pytest
import torch
import yaml

import cnnkit
from cnnkit.cli import main
from cnnkit.errors import CheckpointError, ConfigError
from cnnkit.models.weights import read_state_dict

FAST = {"data": "digits", "augment": "none", "epochs": 1, "quiet": True}


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    return cnnkit.train(name="source", runs_dir=str(runs), **FAST).run_dir


def test_a_run_starts_from_the_given_weights_and_records_them(source, tmp_path):
    # A learning rate of ~0 and no weight decay: the new run's weights must stay the file's.
    r = cnnkit.train(name="b", runs_dir=str(tmp_path), weights=str(source / "best.safetensors"), optimizer="sgd",
                     lr=1e-12, weight_decay=0.0, **FAST)  # fmt: skip
    start, end = read_state_dict(source / "best.safetensors"), read_state_dict(r.run_dir / "best.safetensors")
    assert start.keys() == end.keys()
    for k in start:
        torch.testing.assert_close(end[k], start[k], atol=1e-6, rtol=0)
    cfg = yaml.safe_load((r.run_dir / "config.yaml").read_text())
    assert cfg["weights"] == str(source / "best.safetensors")  # recorded: the config replays the same start
    assert f"starting from {source / 'best.safetensors'}" in (r.run_dir / "log.txt").read_text().splitlines()[0]
    # Trained from there it already scores what the source scored, unlike a fresh LeNet-5 at lr ~0.
    fresh = cnnkit.train(name="fresh", runs_dir=str(tmp_path), optimizer="sgd", lr=1e-12, weight_decay=0.0, **FAST)
    assert r.summary["test"]["acc"] > fresh.summary["test"]["acc"] + 0.3


def test_weights_for_other_classes_point_to_finetune_and_leave_no_run(source, tmp_path, capsys):
    argv = ["train", "--weights", str(source / "best.safetensors"), "--data", "subset:digits?classes=0,1,2",
            "--epochs", "1", "--runs-dir", str(tmp_path), "--name", "c"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --weights {source / 'best.safetensors'}: ") and "cnnkit finetune --weights" in err
    assert "Traceback" not in err and not (tmp_path / "c").exists()
    with pytest.raises(ConfigError, match="--weights must not be empty"):
        cnnkit.train(name="d", runs_dir=str(tmp_path), weights=" ", **FAST)
    with pytest.raises(CheckpointError, match="does not exist"):
        cnnkit.train(name="d", runs_dir=str(tmp_path), weights=str(tmp_path / "missing.pt"), **FAST)
    assert not (tmp_path / "d").exists()


def test_weights_with_a_model_function_are_refused(tmp_path):
    from cnnkit.models import create_model

    def model_fn(cfg, data):
        return create_model("lenet5", num_classes=data.num_classes)

    with pytest.raises(ConfigError, match="builds its own model"):
        cnnkit.train(name="e", runs_dir=str(tmp_path), weights="x.pt", model_fn=model_fn, **FAST)
