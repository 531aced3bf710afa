"""The foundation: training records a complete run folder, reproducibly."""

from __future__ import annotations

import csv
import json

import pytest
import yaml

import cnnkit
from cnnkit.run import RunDir, read_weights


def _metric_columns(path):
    with open(path, newline="") as fh:
        return [{k: v for k, v in r.items() if k != "time_s"} for r in csv.DictReader(fh)]


def test_default_run_folder_is_complete(trained_run):
    files = {p.name for p in trained_run.iterdir()}
    for name in ("config.yaml", "metrics.csv", "best.safetensors", "best.json", "last.safetensors", "last.json",
                 "curves.png", "summary.json", "split.json", "checkpoint.pt", "log.txt"):  # fmt: skip
        assert name in files, name
    cfg = yaml.safe_load((trained_run / "config.yaml").read_text())
    assert cfg["model"] == "lenet5" and cfg["data"] == "digits" and cfg["input_size"] == 32
    assert cfg["augment"] != "auto"  # resolved, not a placeholder
    rows = RunDir(trained_run).read_metrics()
    assert len(rows) == cfg["epochs"]
    assert set(rows[0]) == {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "time_s"}
    side = json.loads((trained_run / "best.json").read_text())
    for key in ("model", "model_args", "classes", "input_size", "channels", "mean", "std", "epoch", "metric"):
        assert key in side, key
    assert side["classes"] == [str(i) for i in range(10)] and side["input_size"] == [1, 32, 32]
    summary = json.loads((trained_run / "summary.json").read_text())
    # README: "LeNet-5 on digits: 98.52% test accuracy with seed 0" (266 of 270), within ~1 point
    assert summary["test"]["acc"] == pytest.approx(0.9852, abs=0.01), summary["test"]
    assert {"torch", "torchvision", "cnnkit"} <= set(summary["versions"])
    assert summary["device"] == "cpu"
    split = json.loads((trained_run / "split.json").read_text())
    assert len(split["train"]) + len(split["val"]) + len(split["test"]) == 1797
    assert not set(split["train"]) & set(split["test"])


def test_best_weights_are_the_recorded_best_epoch(trained_run):
    rows = RunDir(trained_run).read_metrics()
    side = json.loads((trained_run / "best.json").read_text())
    best = min(rows, key=lambda r: float(r["val_loss"]))
    assert side["epoch"] == int(best["epoch"])
    assert side["metric"]["value"] == pytest.approx(float(best["val_loss"]), abs=1e-6)


def test_same_seed_gives_identical_metrics(runs_dir):
    a = cnnkit.train(name="a", runs_dir=runs_dir, epochs=3, seed=7, quiet=True)
    b = cnnkit.train(name="b", runs_dir=runs_dir, epochs=3, seed=7, quiet=True)
    assert _metric_columns(a.run_dir / "metrics.csv") == _metric_columns(b.run_dir / "metrics.csv")
    c = cnnkit.train(name="c", runs_dir=runs_dir, epochs=3, seed=8, quiet=True)
    assert _metric_columns(a.run_dir / "metrics.csv") != _metric_columns(c.run_dir / "metrics.csv")


def test_python_api_load_run_and_predict(trained_run):
    run = cnnkit.load_run(trained_run)
    assert run.classes == [str(i) for i in range(10)]
    assert not run.model.training
    state, meta = read_weights(trained_run / "best.safetensors")
    assert meta.model == "lenet5" and set(state) == set(run.model.state_dict())


def test_l1_hinge_squared_error_and_schedules_train(runs_dir):
    for i, kw in enumerate([
        {"loss": "hinge", "scheduler": "step", "step_size": 1, "optimizer": "adam", "lr": 1e-3},
        {"loss": "squared_error", "scheduler": "onecycle", "l1": 1e-5},
        {"scheduler": "plateau", "optimizer": "adamw", "lr": 1e-3, "warmup_epochs": 1, "label_smoothing": 0.1,
         "grad_clip": 1.0, "monitor": "val_acc"},
    ]):  # fmt: skip
        r = cnnkit.train(name=f"v{i}", runs_dir=runs_dir, epochs=2, quiet=True, **kw)
        assert r.test["acc"] > 0.3, (kw, r.test)


def test_early_stopping_stops(runs_dir):
    r = cnnkit.train(name="es", runs_dir=runs_dir, epochs=30, early_stopping=1, lr=1e-4, optimizer="sgd",
                     scheduler="constant", monitor="val_acc", quiet=True)  # fmt: skip
    assert r.stopped_early and r.epochs_run < 30
    assert json.loads((r.run_dir / "summary.json").read_text())["status"] == "stopped early"
