"""``--time-budget``: the epochs are fitted to the budget before training, recorded, and replay exactly."""

from __future__ import annotations

import pytest
import torch
import yaml

import cnnkit
from cnnkit.config import TrainConfig
from cnnkit.data import load_dataset
from cnnkit.engine.budget import measure_epoch_seconds
from cnnkit.engine.loop import Trainer
from cnnkit.errors import ConfigError
from cnnkit.models import create_model
from cnnkit.run import WeightsMeta


@pytest.mark.slow
def test_budget_fixes_and_records_the_epochs_and_the_config_replays(tmp_path):
    runs = str(tmp_path / "runs")
    first = cnnkit.train(model="lenet5", data="digits", time_budget=2.0, augment="translate=1", runs_dir=runs,
                         name="budget", quiet=True)  # fmt: skip
    cfg = yaml.safe_load((first.run_dir / "config.yaml").read_text())
    assert cfg["time_budget"] is None  # replaying the file trains the recorded epochs, no new measurement
    assert cfg["epochs"] == first.epochs_run >= 1
    assert cfg["epochs_reason"].startswith("--time-budget 2:") and cfg["epochs_reason"].endswith(
        f"-> {cfg['epochs']} epoch(s)")  # fmt: skip
    # The header said how the epochs were chosen, right under the schedule they set.
    log = (first.run_dir / "log.txt").read_text().splitlines()
    at = next(i for i, ln in enumerate(log) if ln.lstrip().startswith("schedule"))
    assert "epochs: --time-budget" in log[at] and log[at + 1].strip().startswith("(--time-budget 2:")
    # The budget is respected loosely (the estimate comes from a dozen steps), never by a wide margin.
    assert first.summary["timing"]["train_seconds"] < 2.0 * 3
    again = cnnkit.train(config=str(first.run_dir / "config.yaml"), runs_dir=runs, name="replay", quiet=True)
    assert again.epochs_run == first.epochs_run
    # The measurement restored model, optimiser and RNG: the replay computes the very same numbers.
    losses = [(r["train_loss"], r["val_loss"]) for r in first.history]
    assert losses == [(r["train_loss"], r["val_loss"]) for r in again.history]


def test_a_tiny_budget_still_trains_one_epoch(tmp_path):
    r = cnnkit.train(model="lenet5", data="digits", time_budget=0.001, augment="none", runs_dir=str(tmp_path),
                     quiet=True)  # fmt: skip
    assert r.epochs_run == 1


def test_budget_and_epochs_together_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="--time-budget 5 and --epochs 3 both set"):
        cnnkit.train(time_budget=5, epochs=3, runs_dir=str(tmp_path), quiet=True)
    with pytest.raises(ConfigError, match="--time-budget"):
        cnnkit.train(time_budget=-1, runs_dir=str(tmp_path), quiet=True)


def _digits_trainer(augment: str, epochs: int) -> Trainer:
    """A LeNet-5 trainer on digits, built directly (no run folder)."""
    splits = load_dataset("digits", input_size=32, seed=0)
    cfg = TrainConfig(augment=augment, epochs=epochs).with_defaults()
    model = create_model("lenet5", num_classes=10, in_chans=1, input_size=(32, 32))
    meta = WeightsMeta(model="lenet5", model_args={}, num_classes=10, classes=splits.classes, input_size=[1, 32, 32],
                       mean=list(splits.mean), std=list(splits.std), dataset="digits", source="test")  # fmt: skip
    return Trainer(model, cfg, splits, meta, None, torch.device("cpu"))


def test_measuring_leaves_the_trainer_as_it_was():
    trainer = _digits_trainer("translate=1", epochs=2)
    model = trainer.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    per_step, per_eval, steps = measure_epoch_seconds(trainer, steps=3, warmup=1)
    assert per_step > 0 and per_eval > 0 and steps == 3
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not trainer.optimizer.state  # no momentum left behind
    assert torch.equal(rng, torch.get_rng_state())


def test_a_few_slow_steps_and_a_slow_first_validation_do_not_set_the_estimate(monkeypatch):
    """The step time is the median of the measured steps: three steps slowed by 0.3 s (a transient load)
    leave it at the fast steps' cost instead of raising the mean by 75 ms; a short validation pass is
    timed twice, so the first one's set-up does not count."""
    import time

    trainer = _digits_trainer("none", epochs=1)
    step, calls = trainer.train_step, []

    def sometimes_slow(x, y):
        calls.append(1)
        if len(calls) in (4, 7, 10):  # 3 of the 12 measured steps (after 2 warm-up steps)
            time.sleep(0.3)
        return step(x, y)

    monkeypatch.setattr(trainer, "train_step", sometimes_slow)
    # The first validation pass pays one-time set-up: a short pass is timed again and the faster counts.
    evaluate, passes = trainer.evaluate, []

    def first_pass_slow(split):
        passes.append(1)
        if len(passes) == 1:
            time.sleep(0.3)
        return evaluate(split)

    monkeypatch.setattr(trainer, "evaluate", first_pass_slow)
    per_step, per_eval, steps = measure_epoch_seconds(trainer, steps=12, warmup=2)
    assert steps == 12 and len(calls) == 14
    assert per_step < 0.1, per_step  # a LeNet-5 step on digits takes a few ms; the mean would be above 0.075
    assert len(passes) == 2 and per_eval < 0.25, per_eval  # 270 images: well under 0.3 s without the set-up
