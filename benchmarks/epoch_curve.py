"""Shared by the time-to-accuracy benchmarks: the test accuracy after every epoch, measured off the clock."""

from __future__ import annotations

from typing import Any

from cnnkit.engine.callbacks import Callback


class TestEveryEpoch(Callback):
    """After each epoch: (training seconds so far, test accuracy). The clock adds each epoch row's
    ``time_s`` (training and validation), so the test evaluation here is not counted."""

    __test__ = False  # not a pytest test class
    order = 90  # after the standard callbacks

    def __init__(self) -> None:
        self.curve: list[tuple[float, float]] = []
        self.clock = 0.0
        self.trainer: Any = None

    def on_fit_start(self, trainer) -> None:
        self.clock, self.curve[:] = 0.0, []

    def on_epoch_end(self, trainer, epoch: int, row: dict[str, Any]) -> None:
        self.clock += row["time_s"]
        self.curve.append((self.clock, trainer.evaluate(trainer.data.test)["acc"]))
        self.trainer = trainer


def first_at(curve: list[tuple[float, float]], target: float) -> tuple[int | None, float | None]:
    """(epoch, training seconds) of the first epoch at or above ``target`` test accuracy; (None, None): never."""
    for i, (t, acc) in enumerate(curve):
        if acc >= target:
            return i + 1, t
    return None, None
