"""Callbacks are the engine's one extension point: a user's callback hooks in from outside the package."""

from __future__ import annotations

import json

import pytest
import torch

import cnnkit
from cnnkit.engine.callbacks import Callback
from cnnkit.errors import CheckpointError, ConfigError

FAST = {"model": "linear", "augment": "none", "batch_size": 256, "quiet": True}


class Recorder(Callback):
    """What a user writes: record every event, stop after epoch 2."""

    def __init__(self, stop_after: int | None = 2) -> None:
        self.events: list[str] = []
        self.stop_after = stop_after

    def on_fit_start(self, trainer):
        self.events.append("fit_start")

    def on_epoch_start(self, trainer, epoch):
        self.events.append(f"epoch_start {epoch}")

    def on_batch_start(self, trainer, x, y):
        self.events.append("batch_start")

    def on_after_backward(self, trainer):
        # Gradients exist here, before the optimiser step.
        assert any(p.grad is not None for p in trainer.model.parameters())
        self.events.append("after_backward")

    def on_batch_end(self, trainer, loss):
        assert isinstance(loss, torch.Tensor) and not loss.requires_grad
        self.events.append("batch_end")

    def on_epoch_end(self, trainer, epoch, row):
        self.events.append(f"epoch_end {epoch} {row['epoch']}")
        if self.stop_after is not None and row["epoch"] >= self.stop_after:
            trainer.stop(f"recorder: stop after epoch {row['epoch']}")

    def on_fit_end(self, trainer):
        self.events.append("fit_end")


def test_a_users_callback_sees_every_event_in_order_and_stops_training(runs_dir):
    rec = Recorder(stop_after=2)
    r = cnnkit.train(name="cb", runs_dir=runs_dir, epochs=5, callbacks=[rec], **FAST)
    # digits: 1257 training images, batch 256 -> 5 batches per epoch
    batch = ["batch_start", "after_backward", "batch_end"] * 5
    assert rec.events == ["fit_start", "epoch_start 0", *batch, "epoch_end 0 1", "epoch_start 1", *batch,
                          "epoch_end 1 2", "fit_end"]  # fmt: skip
    # The stop is recorded: result, summary, log, metrics and a checkpoint that refuses to continue.
    assert r.stopped_early and r.epochs_run == 2
    summary = json.loads((r.run_dir / "summary.json").read_text())
    assert summary["status"] == "stopped early" and summary["stop_reason"] == "recorder: stop after epoch 2"
    assert "recorder: stop after epoch 2" in (r.run_dir / "log.txt").read_text()
    assert len((r.run_dir / "metrics.csv").read_text().strip().splitlines()) == 1 + 2
    ck = torch.load(r.run_dir / "checkpoint.pt", weights_only=True)
    assert ck["stopped_early"] and ck["stop_reason"] == "recorder: stop after epoch 2"
    with pytest.raises(ConfigError, match="stopped early after epoch 2 \\(recorder: stop"):
        cnnkit.train(resume=r.run_dir, epochs=6, quiet=True)


def test_callbacks_fire_by_order_and_checkpoint_keys_survive_resume(runs_dir):
    calls: list[str] = []

    class Late(Callback):
        order = 5

        def on_epoch_end(self, trainer, epoch, row):
            calls.append("late")

    class Early(Callback):
        order = -5

        def on_epoch_end(self, trainer, epoch, row):
            calls.append("early")

    class Counter(Callback):
        """Keeps its own state in the checkpoint."""

        def __init__(self) -> None:
            self.epochs_seen = 0
            self.loaded: dict | None = None

        def on_epoch_end(self, trainer, epoch, row):
            self.epochs_seen += 1

        def on_checkpoint_save(self, trainer, state):
            state["counter"] = {"epochs_seen": self.epochs_seen}

        def on_checkpoint_load(self, trainer, state):
            self.loaded = state["counter"]
            self.epochs_seen = state["counter"]["epochs_seen"]

    r = cnnkit.train(name="order", runs_dir=runs_dir, epochs=1, callbacks=[Late(), Early(), Counter()], **FAST)
    assert calls == ["early", "late"]
    assert torch.load(r.run_dir / "checkpoint.pt", weights_only=True)["counter"] == {"epochs_seen": 1}
    again = Counter()
    cnnkit.train(resume=r.run_dir, epochs=2, callbacks=[again], quiet=True)
    assert again.loaded == {"epochs_seen": 1} and again.epochs_seen == 2
    assert torch.load(r.run_dir / "checkpoint.pt", weights_only=True)["counter"] == {"epochs_seen": 2}


def test_should_stop_without_a_reason_and_non_callbacks_are_refused(runs_dir):
    class Halt(Callback):
        def on_epoch_end(self, trainer, epoch, row):
            trainer.should_stop = True

    r = cnnkit.train(name="halt", runs_dir=runs_dir, epochs=3, callbacks=[Halt()], **FAST)
    assert r.stopped_early and r.epochs_run == 1

    class NotACallback:
        def on_epoch_end(self, trainer, epoch, row): ...

    with pytest.raises(ConfigError, match="is not a cnnkit.engine.callbacks.Callback"):
        cnnkit.train(name="bad", runs_dir=runs_dir, epochs=1, callbacks=[NotACallback()], **FAST)


def test_resume_is_refused_for_a_run_another_command_made(runs_dir):
    r = cnnkit.train(name="tool", runs_dir=runs_dir, epochs=1, command="mytool", **FAST)
    assert json.loads((r.run_dir / "resume.json").read_text())["command"] == "mytool"
    with pytest.raises(ConfigError, match="cnnkit mytool --resume") as e:
        cnnkit.train(resume=r.run_dir, epochs=2, quiet=True)
    assert "continue it with: cnnkit mytool --resume" in e.value.hint
    cnnkit.train(resume=r.run_dir, epochs=2, quiet=True, command="mytool")  # the command that made it can
    (r.run_dir / "resume.json").write_text("[1]")
    with pytest.raises(CheckpointError, match="resume.json"):
        cnnkit.train(resume=r.run_dir, epochs=3, quiet=True)
