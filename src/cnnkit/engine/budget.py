"""``--time-budget SECONDS``: as many epochs as the budget allows, with the schedule fitted to them.

The schedule (warmup, cosine or linear decay) spans the whole run, so the number of epochs must be
known before the first step. :func:`fit_epochs_to_budget` times a few real training steps and one
validation pass on a snapshot of the model and optimiser, restores them, and fixes the epoch count.
The run then records ``epochs: N`` (and how it was chosen) in config.yaml, so replaying the config
trains exactly the same run, without measuring again.
"""

from __future__ import annotations

import copy
import math
import statistics
import time

from .device import forked_rng, synchronize
from .loop import Trainer


def measure_epoch_seconds(trainer: Trainer, steps: int = 12, warmup: int = 2) -> tuple[float, float, int]:
    """(seconds per training step, seconds per validation pass, steps measured) on ``trainer``'s data.

    A step's time is the median of the measured steps: a few slow ones (a transient load on the machine,
    a first call's set-up) once made the estimate twice the real cost, and the run used half its budget.
    The steps are real training steps (loader, augmentation, forward, backward, update) at the run's
    first learning rate; afterwards the model, optimiser and loss scaler are restored, and the random
    generators (CPU and device) were forked, so the run starts exactly as it would have without it.
    """
    model, opt, device = trainer.model, trainer.optimizer, trainer.device
    saved = (copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict()),
             copy.deepcopy(trainer.scaler.state_dict()))  # fmt: skip
    callbacks, trainer.callbacks = trainer.callbacks, []  # nobody logs or checkpoints these steps
    was_training = model.training
    try:
        with forked_rng(device):
            model.train()
            trainer.schedule.set_step(0)
            trainer.train_loader.set_epoch(0)
            n, last, times = 0, 0.0, []
            while n < warmup + steps:
                for x, y in trainer.train_loader:
                    if n == warmup:
                        synchronize(device)
                        last = time.perf_counter()
                    trainer.train_step(x, y)
                    n += 1
                    if n > warmup:  # each step from the end of the one before: batch loading included
                        synchronize(device)
                        now = time.perf_counter()
                        times.append(now - last)
                        last = now
                    if n >= warmup + steps:
                        break
            per_step = statistics.median(times) if times else 0.0
            timed = len(times)
            per_eval = _time_validation(trainer)
    finally:
        trainer.callbacks = callbacks
        model.load_state_dict(saved[0])
        opt.load_state_dict(saved[1])
        trainer.scaler.load_state_dict(saved[2])
        model.train(was_training)
    return per_step, per_eval, timed


def _time_validation(trainer: Trainer, again_below_s: float = 1.0) -> float:
    """Seconds for one validation pass. The first pass pays one-time set-up (the evaluation loader, the
    kernels for its batch shape): on digits 0.078 s against 0.018 s afterwards, a third of the estimated
    epoch. So a short pass is timed twice and the faster counts; a long one, where set-up is noise, once."""
    if not len(trainer.data.val):
        return 0.0
    best = float("inf")
    for _ in range(2):
        t = time.perf_counter()
        trainer.evaluate(trainer.data.val)
        synchronize(trainer.device)
        best = min(best, time.perf_counter() - t)
        if best >= again_below_s:
            break
    return best


def fit_epochs_to_budget(trainer: Trainer, budget_s: float) -> tuple[int, str]:
    """The number of epochs that fit in ``budget_s`` seconds of training, and a one-line reason.

    The budget covers the training epochs with their validation passes (not loading the data); the
    measurement itself is taken out of it. At least one epoch is trained whatever the budget.
    """
    t0 = time.perf_counter()
    per_step, per_eval, timed = measure_epoch_seconds(trainer)
    spent = time.perf_counter() - t0
    per_epoch = per_step * len(trainer.train_loader) + per_eval
    epochs = max(1, math.floor((budget_s - spent) / max(per_epoch, 1e-9)))
    reason = (f"--time-budget {budget_s:g}: {per_epoch:.3g} s per epoch ({per_step * 1000:.3g} ms per step, the "
              f"median of {timed} measured steps, {per_eval:.3g} s validation) -> {epochs} epoch(s)")  # fmt: skip
    return epochs, reason
