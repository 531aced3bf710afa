"""Learning-rate schedules: a registry of closed-form multipliers, and :class:`LRSchedule` that applies them.

A schedule is one function of where training is (:class:`Progress`) returning the multiplier of the
base learning rate; :func:`register_schedule` makes it a ``--scheduler`` choice::

    @register_schedule("linear", help="straight down to 0 at the end")
    def linear(p: Progress) -> float:
        return 1 - p.fraction

The linear ``--warmup-epochs`` ramp is applied before every schedule by :class:`LRSchedule`, which asks
the schedule only after the warmup (``p.t`` counts from there). A schedule registered with
``plateau=True`` also follows the validation metric: ``p.plateau`` is ``gamma`` to the power of the
times it stalled for more than ``--plateau-patience`` epochs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..config import TrainConfig
from ..registries import SCHEDULES


@dataclass(frozen=True)
class Progress:
    """Where training is, as a schedule sees it (counts are optimiser steps)."""

    step: int  # 0-based, since the start of training (warmup included)
    steps_per_epoch: int
    total: int  # steps of the whole run: epochs x steps_per_epoch
    warmup: int  # warmup steps (0: none); a schedule is asked from step == warmup on
    cfg: TrainConfig  # the run's options: gamma, step_size, epochs, ...
    plateau: float = 1.0  # plateau schedules: the multiplier the stalls of the metric have accumulated

    @property
    def t(self) -> int:
        """Steps since the warmup ended."""
        return self.step - self.warmup

    @property
    def span(self) -> int:
        """Steps after the warmup (at least 1)."""
        return max(1, self.total - self.warmup)

    @property
    def fraction(self) -> float:
        """How far through the post-warmup steps, from 0 to 1."""
        return min(self.t, self.span) / self.span


def register_schedule(
    name: str, *, help: str | None = None, plateau: bool = False
) -> Callable[[Callable[[Progress], float]], Callable[[Progress], float]]:
    """Decorator: register ``factor(progress) -> float`` (the multiplier of the base learning rate,
    >= 0) as ``--scheduler name``. ``plateau=True``: the schedule reads ``progress.plateau``, so
    :meth:`LRSchedule.end_epoch` tracks the validation metric for it."""
    return SCHEDULES.register(name, help=help, plateau=bool(plateau))


@register_schedule("constant", help="the base rate throughout")
def constant(p: Progress) -> float:
    return 1.0


@register_schedule("step", help="times --gamma every --step-size epochs")
def step_decay(p: Progress) -> float:
    return p.cfg.gamma ** (p.step // (p.cfg.step_size * p.steps_per_epoch))


@register_schedule("plateau", plateau=True,
                   help="times --gamma when --monitor stalls (see --plateau-patience)")  # fmt: skip
def on_plateau(p: Progress) -> float:
    return p.plateau


@register_schedule("cosine", help="half a cosine from the base rate down to 0 at the end")
def cosine(p: Progress) -> float:
    return 0.5 * (1 + math.cos(math.pi * min(p.t, p.span) / p.span))


@register_schedule("linear", help="straight down from the base rate to 0 at the end")
def linear(p: Progress) -> float:
    return 1.0 - p.fraction


@register_schedule("onecycle", help="up from lr/25 over 30% (or the warmup), cosine down to lr/1000")
def onecycle(p: Progress) -> float:
    # Smith's one-cycle: ramp up over the first 30%, cosine down to 1/1000 of the peak.
    # With warmup the ramp is the warmup itself.
    t, span = p.t, p.span
    up = 0 if p.warmup else int(0.3 * span)
    if t < up:
        return 0.04 + 0.96 * 0.5 * (1 - math.cos(math.pi * t / up))
    tt = min(t - up, span - up) / max(1, span - up)
    return 1e-3 + (1 - 1e-3) * 0.5 * (1 + math.cos(math.pi * tt))


class LRSchedule:
    """Learning-rate schedule evaluated per optimiser step, with optional linear warmup.

    Written as one closed-form function of the step (plus the plateau state) rather than chaining
    torch's schedulers because warmup composes with every schedule the same way, ReduceLROnPlateau
    cannot sit inside SequentialLR, and the whole state is two numbers: resuming is exact.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int) -> None:
        cfg = cfg.with_defaults()  # unset fields (a config built by hand): the general recipe
        self.opt = optimizer
        self.cfg = cfg
        self.kind = cfg.scheduler
        self.entry = SCHEDULES.get(cfg.scheduler)  # ConfigError (did you mean ...) for an unknown name
        self.steps_per_epoch = max(1, steps_per_epoch)
        self.total = cfg.epochs * self.steps_per_epoch
        self.warmup = int(round(cfg.warmup_epochs * self.steps_per_epoch))
        self.step_size, self.gamma = cfg.step_size, cfg.gamma
        self.patience = cfg.plateau_patience
        self.mode = "min" if cfg.monitor.endswith("loss") else "max"
        # Like torch's schedulers, remember each group's starting rate so a schedule rebuilt on the
        # same optimiser (resume, unfreezing) does not compound decays.
        self.base = [g.setdefault("initial_lr", g["lr"]) for g in optimizer.param_groups]
        # plateau state
        self.plateau_factor = 1.0
        self.best: float | None = None
        self.bad_epochs = 0

    def progress(self, step: int) -> Progress:
        return Progress(step, self.steps_per_epoch, self.total, self.warmup, self.cfg, self.plateau_factor)

    def factor(self, step: int) -> float:
        """Multiplier of the base learning rate at optimiser step ``step`` (0-based)."""
        if self.warmup and step < self.warmup:
            return 0.01 + 0.99 * step / self.warmup
        f = float(self.entry.fn(self.progress(step)))
        if not (math.isfinite(f) and f >= 0):
            raise ValueError(
                f"schedule {self.kind!r} returned {f} at step {step}; expected a finite number >= 0"
            )
        return f

    def set_step(self, step: int) -> None:
        f = self.factor(step)
        for g, b in zip(self.opt.param_groups, self.base, strict=True):
            g["lr"] = b * f

    def end_epoch(self, metric: float | None) -> None:
        """Feed the validation metric (plateau schedules: multiply by gamma when it stalls)."""
        if not self.entry.meta.get("plateau") or metric is None:
            return
        better = self.best is None or (metric < self.best if self.mode == "min" else metric > self.best)
        if better:
            self.best, self.bad_epochs = metric, 0
        else:
            self.bad_epochs += 1
            if self.bad_epochs > self.patience:
                self.plateau_factor *= self.gamma
                self.bad_epochs = 0

    @property
    def lr(self) -> float:
        return float(self.opt.param_groups[0]["lr"])

    def state_dict(self) -> dict[str, Any]:
        return {"plateau_factor": self.plateau_factor, "best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, s: dict[str, Any]) -> None:
        self.plateau_factor, self.best, self.bad_epochs = s["plateau_factor"], s["best"], s["bad_epochs"]
