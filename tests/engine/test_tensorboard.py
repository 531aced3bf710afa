"""``--logger tensorboard``: what TensorBoard's own reader finds in RUN/tensorboard/, and that logging
changes nothing about training."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest
import torch
from torch import nn

pytest.importorskip("tensorboard")

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2  # noqa: E402

import cnnkit  # noqa: E402
from cnnkit.cli import main  # noqa: E402
from cnnkit.engine.tensorboard import TensorBoardLogger  # noqa: E402
from cnnkit.run import read_weights  # noqa: E402

ARGS = ["--model", "linear", "--epochs", "2", "--augment", "translate=2", "--batch-size", "128"]


def _events(log_dir: Path) -> EventAccumulator:
    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv", newline="") as fh:
        return [{k: v for k, v in r.items() if k != "time_s"} for r in csv.DictReader(fh)]


def test_tensorboard_logs_scalars_images_graph_and_hparams(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["train", *ARGS, "--runs-dir", str(runs), "--name", "tb", "--logger", "tensorboard"]) == 0
    out = capsys.readouterr().out
    assert f"tensorboard --logdir {runs}" in out.splitlines()[0]  # printed first, before training starts

    acc = _events(runs / "tb" / "tensorboard")
    tags = acc.Tags()
    # digits: 1257 training images, batch 128 -> 10 steps per epoch; logged every step (a tenth of an epoch)
    loss = acc.Scalars("train/loss")
    assert [e.step for e in loss] == list(range(20)) and all(e.value > 0 for e in loss)
    lr = [e.value for e in acc.Scalars("train/lr")]
    assert lr[0] == pytest.approx(0.05) and lr[-1] < lr[0]  # cosine decay, per step
    rows = _rows(runs / "tb")
    for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
        got = acc.Scalars(f"epoch/{key}")
        assert [e.step for e in got] == [1, 2], key
        assert [e.value for e in got] == pytest.approx([float(r[key]) for r in rows], abs=1e-5), key
    assert {"best/val_loss", "best/val_acc", "best/epoch"} <= set(tags["scalars"])

    images = acc.Images("train/augmented_batch")
    assert len(images) == 1 and (images[0].width, images[0].height) > (28, 28)  # a grid of 28x28 digits
    assert tags["graph"]  # linear traces

    hp = acc.PluginTagToContent(metadata.PLUGIN_NAME)
    start = plugin_data_pb2.HParamsPluginData.FromString(hp[metadata.SESSION_START_INFO_TAG]).session_start_info
    assert start.hparams["model"].string_value == "linear"
    assert start.hparams["lr"].number_value == pytest.approx(0.05)
    assert start.hparams["epochs"].number_value == 2 and start.hparams["augment"].string_value == "translate=2"
    assert "runs_dir" not in start.hparams  # where a run lives is not a hyperparameter
    end = plugin_data_pb2.HParamsPluginData.FromString(hp[metadata.SESSION_END_INFO_TAG]).session_end_info
    assert end.status == api_pb2.STATUS_SUCCESS


def test_logging_does_not_change_training(tmp_path):
    common = {"model": "linear", "epochs": 2, "augment": "translate=2,rotate=10", "batch_size": 128,
              "runs_dir": str(tmp_path), "quiet": True}  # fmt: skip
    plain = cnnkit.train(name="plain", **common)
    logged = cnnkit.train(name="logged", logger="tensorboard", **common)
    assert _rows(plain.run_dir) == _rows(logged.run_dir)
    a, b = read_weights(plain.run_dir / "last.safetensors")[0], read_weights(logged.run_dir / "last.safetensors")[0]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not (plain.run_dir / "tensorboard").exists()


def test_graph_logging_keeps_module_modes_and_the_random_state(tmp_path):
    class Frozen(nn.Module):  # fine-tuning: batch norm of frozen layers trains in eval mode
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.bn, self.fc = nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 3)

        def forward(self, x):
            return self.fc(self.bn(self.conv(x)).mean((2, 3)))

    model = Frozen().train()
    model.bn.eval()

    class Run:
        path = tmp_path

    class FakeTrainer:
        run = Run()

    FakeTrainer.model = model
    logger = TensorBoardLogger()
    x = torch.randn(4, 1, 8, 8)
    before = torch.get_rng_state()
    logger._log_graph(FakeTrainer(), x)
    logger.close()
    assert model.training and model.conv.training and not model.bn.training
    assert torch.equal(torch.get_rng_state(), before)
    assert _events(tmp_path / "tensorboard").Tags()["graph"]


def test_missing_tensorboard_fails_at_config_time_with_one_line(tmp_path, monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    runs = tmp_path / "runs"
    assert main(["train", *ARGS, "--runs-dir", str(runs), "--logger", "tensorboard"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ['error: --logger tensorboard needs the tensorboard package: pip install "cnnkit[tensorboard]"']
    assert not runs.exists()  # nothing loaded, nothing written
