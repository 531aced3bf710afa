"""Optimisers and learning-rate schedules."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from ..config import TrainConfig, optimizer_and_lr


def param_groups(
    model: nn.Module, weight_decay: float, lr_mults: dict[str, float] | None = None
) -> list[dict[str, Any]]:
    """Split trainable parameters into groups: weight decay only on weights (not biases or norms),
    and an optional learning-rate multiplier per name prefix (e.g. ``{"features": 0.1}`` for
    fine-tuning a backbone more gently than a new head)."""
    lr_mults = lr_mults or {}
    groups: dict[tuple[float, bool], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        mult = next((m for prefix, m in lr_mults.items() if name.startswith(prefix)), 1.0)
        decay = p.ndim > 1  # biases and batch-norm scales are not regularised
        groups.setdefault((mult, decay), []).append(p)
    return [
        {"params": ps, "weight_decay": weight_decay if decay else 0.0, "lr_mult": mult}
        for (mult, decay), ps in sorted(groups.items(), key=lambda kv: (-kv[0][0], not kv[0][1]))
    ]


def build_optimizer(
    model: nn.Module, cfg: TrainConfig, lr_mults: dict[str, float] | None = None
) -> torch.optim.Optimizer:
    """SGD (momentum, Nesterov), Adam or AdamW over :func:`param_groups`."""
    # Unset (None) optimiser/lr only reach here when a config skipped resolve_config (direct Trainer
    # use): take the general defaults, as resolve_config would for a model without a recipe.
    name, lr = optimizer_and_lr(cfg.optimizer, cfg.lr)
    groups = param_groups(model, cfg.weight_decay, lr_mults)
    for g in groups:
        g["lr"] = lr * g["lr_mult"]
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr)
    return torch.optim.AdamW(groups, lr=lr)


def l1_penalty(params: Iterable[nn.Parameter]) -> torch.Tensor:
    """Sum of absolute weights (matrices and kernels only), the lectures' L1 regulariser."""
    terms = [p.abs().sum() for p in params if p.requires_grad and p.ndim > 1]
    return torch.stack(terms).sum() if terms else torch.zeros(())


class LRSchedule:
    """Learning-rate schedule evaluated per optimiser step, with optional linear warmup.

    Written as one closed-form function of the step (plus the plateau state) rather than chaining
    torch's schedulers because warmup composes with every schedule the same way, ReduceLROnPlateau
    cannot sit inside SequentialLR, and the whole state is two numbers: resuming is exact.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int) -> None:
        self.opt = optimizer
        self.kind = cfg.scheduler
        self.steps_per_epoch = max(1, steps_per_epoch)
        self.total = cfg.epochs * self.steps_per_epoch
        # None: a config not passed through resolve_config (direct Trainer use) -> no warmup.
        self.warmup = int(round((cfg.warmup_epochs or 0.0) * self.steps_per_epoch))
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

    def factor(self, step: int) -> float:
        """Multiplier of the base learning rate at optimiser step ``step`` (0-based)."""
        if self.warmup and step < self.warmup:
            return 0.01 + 0.99 * step / self.warmup
        t = step - self.warmup
        span = max(1, self.total - self.warmup)
        if self.kind == "constant":
            return 1.0
        if self.kind == "step":
            return self.gamma ** (step // (self.step_size * self.steps_per_epoch))
        if self.kind == "plateau":
            return self.plateau_factor
        if self.kind == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(t, span) / span))
        # one-cycle (Smith): ramp up over the first 30%, cosine down to 1/1000 of the peak.
        # With warmup the ramp is the warmup itself.
        up = 0 if self.warmup else int(0.3 * span)
        if t < up:
            return 0.04 + 0.96 * 0.5 * (1 - math.cos(math.pi * t / up))
        tt = min(t - up, span - up) / max(1, span - up)
        return 1e-3 + (1 - 1e-3) * 0.5 * (1 + math.cos(math.pi * tt))

    def set_step(self, step: int) -> None:
        f = self.factor(step)
        for g, b in zip(self.opt.param_groups, self.base, strict=True):
            g["lr"] = b * f

    def end_epoch(self, metric: float | None) -> None:
        """Feed the validation metric (plateau schedule: divide by 1/gamma when it stalls)."""
        if self.kind != "plateau" or metric is None:
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
