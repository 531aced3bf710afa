"""The learning-rate range test (Leslie Smith 2015; fastai's ``lr_find``) through the real training step.

The rate grows exponentially from ``start_lr`` to ``end_lr`` over ``steps`` mini-batches of the training
loader (its augmentation, AMP and channels-last included), each one a :meth:`Trainer.train_step`. The
loss is smoothed (exponential moving average, bias-corrected, beta 0.98 as fastai) and the sweep stops
when the smoothed loss exceeds ``stop_factor`` (4) times its minimum or becomes NaN/inf. The suggestion is
fastai's ``valley``; the steepest-descent point and the minimum/10 rule are kept as candidates.

The sweep trains a copy of the model, and the random number generators are restored afterwards, so
``cnnkit train --lr find`` starts from the same initial weights and draws as ``--lr <the number>``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import TrainConfig, config_mapping
from ..data import DatasetSplits
from ..errors import ConfigError, TrainingDiverged
from ..run import WeightsMeta
from . import distributed
from .device import forked_rng
from .loop import Trainer, epoch_seed
from .progress import Reporter

START_LR, END_LR, STEPS = 1e-7, 10.0, 100  # fastai's defaults
STOP_FACTOR = 4.0  # fastai stops once the smoothed loss passes 4x its best
BETA = 0.98  # fastai's smoothing of the recorded loss
REASON_PREFIX = "lr-find chose"  # how config.yaml's lr_reason starts (resolve_config checks it still applies)
METHOD = "valley"


@dataclass
class LRFindResult:
    """The swept rates, raw and smoothed losses, the suggestion and the other candidates."""

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    suggestion: float
    candidates: dict[str, float]  # valley (the suggestion), steep, minimum/10
    stop_reason: str
    start_lr: float
    end_lr: float
    steps: int
    setup: dict[str, Any] = field(default_factory=dict)  # model, data, optimizer, batch size, augment, device
    method: str = METHOD

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def reason(self) -> str:
        """The note config.yaml keeps next to the rate (``lr_reason``), starting with :data:`REASON_PREFIX`."""
        return (f"{REASON_PREFIX} {self.suggestion:g}: {self.method} of the smoothed loss over {len(self.lrs)} steps "
                f"from {self.start_lr:.3g} to {self.lrs[-1]:.3g} ({self.stop_reason}); steepest "
                f"{self.candidates['steep']:g}, minimum/10 {self.candidates['minimum/10']:g}")  # fmt: skip

    def plot(self, path: str | Path, title: str = "") -> Path:
        return plot_lr_find(self, path, title)


# ---------------------------------------------------------------------------- suggestions
# fastai's three rules (fastai/callback/schedule.py), written out because fastai is not a dependency
# and each is a few lines over the recorded curve.
def valley(lrs: Sequence[float], losses: Sequence[float]) -> int:
    """Index 2/3 of the way down the longest valley: the longest decreasing run of the smoothed loss.

    fastai's ``valley``, the suggestion by default: the steepest point often sits so close to the blow-up
    that training there diverges, and the minimum is where the loss is about to blow up. Measured on
    LeNet-5 with SGD (momentum 0.9), digits, 10 epochs, seeds 0 and 1: the steepest points (0.115, 0.167)
    ended at 10% test accuracy in 2 of 4 runs. fastai describes the point as "2/3 through the longest
    valley", and that is taken here; its code's index arithmetic lands half-way, which on a network that
    stays on the 2.30 plateau for most of the sweep (that SGD LeNet-5) is inside the noise: 0.0085-0.015,
    1-5 points below SGD's lr 0.05 after 10 epochs, where 2/3 gives 0.02-0.055 (98.5% and 97.0% test;
    lr 0.05: 97.4% and 97.8%).
    """
    n = len(losses)
    lds = [1] * n  # length of the longest decreasing subsequence ending at i
    max_end = 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
        if lds[max_end] < lds[i]:
            max_end = i
    max_start = max_end - lds[max_end] + 1
    return min(max(max_start + round(2 * (max_end - max_start) / 3), 0), n - 1)


def steepest(lrs: Sequence[float], losses: Sequence[float]) -> int:
    """Index where the loss falls fastest against log(lr) (fastai's ``steep``)."""
    if len(lrs) < 2:
        return 0
    grads = [
        (losses[i + 1] - losses[i]) / (math.log(lrs[i + 1]) - math.log(lrs[i])) for i in range(len(lrs) - 1)
    ]
    return min(range(len(grads)), key=grads.__getitem__)


def suggest(lrs: Sequence[float], smoothed: Sequence[float], planned_steps: int) -> dict[str, float]:
    """The candidates over the curve without its first tenth and last 5 points (fastai trims the same)."""
    lo, hi = planned_steps // 10, len(lrs) - 5
    if hi - lo < 5:  # a sweep that stopped early: use what there is
        lo, hi = 0, len(lrs)
    xs, ys = list(lrs[lo:hi]), list(smoothed[lo:hi])
    best = min(range(len(ys)), key=ys.__getitem__)
    return {"valley": xs[valley(xs, ys)], "steep": xs[steepest(xs, ys)], "minimum/10": xs[best] / 10}


def exp_lrs(start_lr: float, end_lr: float, steps: int) -> list[float]:
    """``steps`` rates from ``start_lr`` to ``end_lr``, equally spaced in log(lr)."""
    if steps == 1:
        return [start_lr]
    return [start_lr * (end_lr / start_lr) ** (i / (steps - 1)) for i in range(steps)]


def check_range(start_lr: float, end_lr: float, steps: int) -> None:
    """One clear line for a range that cannot be swept."""
    for name, v in (("--start-lr", start_lr), ("--end-lr", end_lr)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ConfigError(
                f"{name} must be a positive number, got {v!r}", hint="e.g. --start-lr 1e-7 --end-lr 10"
            )
    if start_lr >= end_lr:
        raise ConfigError(f"--start-lr {start_lr:g} must be below --end-lr {end_lr:g}",
                          hint="the sweep goes up, e.g. --start-lr 1e-7 --end-lr 10")  # fmt: skip
    if isinstance(steps, bool) or not isinstance(steps, int) or not 5 <= steps <= 100_000:
        raise ConfigError(
            f"--steps must be a whole number from 5 to 100000, got {steps!r}", hint="e.g. --steps 100"
        )


# ---------------------------------------------------------------------------- the sweep
def _batches(trainer: Trainer) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The training loader, epoch after epoch (each reshuffled and reseeded as training does)."""
    epoch = 0
    while True:
        torch.manual_seed(epoch_seed(trainer.cfg.seed, epoch))  # dropout and the like, as train_one_epoch
        trainer.train_loader.set_epoch(epoch)
        empty = True
        for batch in trainer.train_loader:
            empty = False
            yield batch
        if empty:
            raise ConfigError(
                "the training split has no batches", hint="use more data or a smaller --batch-size"
            )
        epoch += 1


def sweep(
    trainer: Trainer, start_lr: float = START_LR, end_lr: float = END_LR, steps: int = STEPS,
    stop_factor: float = STOP_FACTOR, on_step: Callable[[int, float, float, float], None] | None = None,
) -> tuple[list[float], list[float], list[float], str]:  # fmt: skip
    """Train ``trainer``'s model at exponentially growing rates: (lrs, losses, smoothed losses, why it stopped).

    Every parameter group gets the rate times its multiplier (``lr_mult``, e.g. a backbone at 0.1x), as
    :func:`~cnnkit.engine.optim.build_optimizer` set them. ``on_step(i, lr, loss, smoothed)`` reports progress.
    """
    check_range(start_lr, end_lr, steps)
    trainer.model.train()
    lrs, losses, smoothed = [], [], []
    avg, best = 0.0, math.inf
    reason = f"reached the top of the sweep (lr {end_lr:g})"
    batches = _batches(trainer)
    for i, lr in enumerate(exp_lrs(start_lr, end_lr, steps)):
        for g in trainer.optimizer.param_groups:
            g["lr"] = lr * g.get("lr_mult", 1.0)
        x, y = next(batches)
        trainer.batch = trainer.step = i
        try:
            loss_t, _ = trainer.train_step(x, y)
        except TrainingDiverged:
            reason = f"the loss became non-finite at lr {lr:.3g}"
            break
        # Every process sees the same mean loss, so all stop at the same step.
        loss = distributed.sum_all(loss_t.detach())[0] / distributed.current().size
        avg = BETA * avg + (1 - BETA) * loss
        smooth = avg / (1 - BETA ** (i + 1))  # bias correction: the first values are not pulled to 0
        lrs.append(lr)
        losses.append(loss)
        smoothed.append(smooth)
        if on_step is not None:
            on_step(i, lr, loss, smooth)
        best = min(best, smooth)
        if not math.isfinite(smooth) or smooth > stop_factor * best:
            reason = f"the smoothed loss passed {stop_factor:g}x its minimum at lr {lr:.3g}"
            break
    return lrs, losses, smoothed, reason


def find_lr(
    cfg: TrainConfig, data: DatasetSplits, model: nn.Module, device: torch.device, *,
    lr_mults: dict[str, float] | None = None, start_lr: float = START_LR, end_lr: float = END_LR,
    steps: int = STEPS, stop_factor: float = STOP_FACTOR, reporter: Reporter | None = None,
) -> LRFindResult:  # fmt: skip
    """Run the range test on a copy of ``model`` with ``cfg``'s optimiser, loader and step; nothing else changes.

    ``model`` keeps its weights, and the random number generators their state, so the training that
    follows is the one ``--lr <suggestion>`` would run.
    """
    check_range(start_lr, end_lr, steps)
    reporter = reporter or Reporter(enabled=False)
    c, h, w = data.image_shape
    meta = WeightsMeta(model=cfg.model, model_args=cfg.model_args, num_classes=data.num_classes,
                       classes=data.classes, input_size=[c, h, w], mean=list(data.mean), std=list(data.std))  # fmt: skip
    # The CPU's and the accelerator's generators are put back afterwards (dropout, shuffling draw from them).
    with forked_rng(device):
        trainer = Trainer(copy.deepcopy(model), cfg, data, meta, None, device, Reporter(enabled=False),
                          lr_mults=lr_mults)  # fmt: skip
        with _Bar(reporter, steps) as bar:
            lrs, losses, smoothed, reason = sweep(trainer, start_lr, end_lr, steps, stop_factor, bar.update)
    del trainer
    if len(lrs) < 3:
        raise TrainingDiverged(f"lr-find stopped after {len(lrs)} step(s): {reason}",
                               hint=f"start lower (--start-lr {start_lr / 100:g}) or check the data and model")  # fmt: skip
    cands = suggest(lrs, smoothed, steps)
    cands = {k: float(f"{v:.3g}") for k, v in cands.items()}  # 3 digits: the test is no more precise
    setup = {"model": cfg.model, "data": cfg.data, "optimizer": cfg.optimizer, "batch_size": cfg.batch_size,
             "weight_decay": cfg.weight_decay, "augment": cfg.augment, "amp": str(trainer_amp(device, cfg)),
             "device": device.type, "lr_mults": lr_mults or {}}  # fmt: skip
    return LRFindResult(lrs, losses, smoothed, cands[METHOD], cands, reason, start_lr, end_lr, steps, setup)


def trainer_amp(device: torch.device, cfg: TrainConfig) -> str:
    from .device import amp_dtype

    dt = amp_dtype(device, cfg.amp)
    return "off" if dt is None else str(dt).replace("torch.", "")


class _Bar:
    """A transient rich bar on a terminal (lr and smoothed loss so far); nothing in logs or pipes."""

    def __init__(self, reporter: Reporter, steps: int) -> None:
        self.reporter, self.steps, self.progress, self.task = reporter, steps, None, None

    def __enter__(self) -> _Bar:
        if self.reporter.enabled and self.reporter.console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(TextColumn("lr-find"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[stats]}"), TimeElapsedColumn(),
                                     console=self.reporter.console, transient=True)  # fmt: skip
            self.progress.start()
            self.task = self.progress.add_task("lr-find", total=self.steps, stats="")
        return self

    def update(self, i: int, lr: float, loss: float, smooth: float) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=i + 1, stats=f"lr {lr:.2e}  loss {smooth:.4f}")

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()


def plot_lr_find(result: LRFindResult, path: str | Path, title: str = "") -> Path:
    """Loss against the learning rate (log axis), raw and smoothed, with the candidates marked; saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers or CI
    import matplotlib.pyplot as plt

    from ..io import atomic_write

    r = result
    fig, ax = plt.subplots(figsize=(8, 5), dpi=100, layout="constrained")
    ax.plot(r.lrs, r.losses, ".", ms=3, color="#9ab", label="loss of each batch")
    ax.plot(r.lrs, r.smoothed, "-", lw=2, color="#1f77b4", label="smoothed loss")
    styles = {"valley": ("*", 16, "#2a7d2e"), "steep": ("v", 9, "#d62728"), "minimum/10": ("s", 7, "#9467bd")}
    for name, lr in r.candidates.items():
        marker, size, color = styles.get(name, ("o", 7, "k"))
        # The smoothed loss at the swept rate nearest the candidate (minimum/10 may lie before the sweep).
        i = min(range(len(r.lrs)), key=lambda k: abs(math.log(r.lrs[k]) - math.log(lr)))
        label = f"{name} {lr:.3g}" + ("  (suggested)" if name == r.method else "")
        ax.plot([lr], [r.smoothed[i]], marker, ms=size, color=color, zorder=5, label=label)
    ax.axvline(r.suggestion, color="#2a7d2e", ls="--", lw=1.2, zorder=0)
    ax.set_xscale("log")
    # The y range of the curve and of every batch's loss without the last 5 points (as fastai's plot): the
    # blow-up that ended the sweep would otherwise flatten the part that matters into a line.
    keep = max(len(r.smoothed) - 5, 3)
    shown = [v for v in (*r.smoothed[:keep], *r.losses[:keep]) if math.isfinite(v)]
    if shown:
        lo, hi = min(shown), max(shown)
        pad = 0.08 * (hi - lo) + 1e-3
        ax.set_ylim(lo - pad, hi + pad)
    ax.set(xlabel="learning rate (log scale)", ylabel="training loss",
           title=title or f"learning-rate range test: suggested lr {r.suggestion:.3g} ({r.method})")  # fmt: skip
    ax.grid(alpha=0.3, which="major")
    ax.grid(alpha=0.12, which="minor")
    ax.legend(loc="best")
    atomic_write(path, lambda p: fig.savefig(p, format="png", metadata={"Software": None}))
    plt.close(fig)
    return Path(path)


# ---------------------------------------------------------------------------- `cnnkit train --lr find`
def wants_lr_find(file_opts: dict[str, Any], overrides: dict[str, Any]) -> bool:
    """``--lr find`` (or ``lr: find`` in a ``--config`` file that no ``--lr`` flag overrides)."""
    lr = overrides["lr"] if "lr" in overrides else file_opts.get("lr")
    return isinstance(lr, str) and lr.strip().lower() == "find"


def lr_reason_matches(lr: float | None, reason: str | None) -> bool:
    """Whether a recorded ``lr_reason`` was written for this rate (a replayed config with another ``--lr``: no)."""
    return reason is not None and lr is not None and reason.startswith(f"{REASON_PREFIX} {lr:g}:")


def with_found_lr(
    cfg: TrainConfig, data: DatasetSplits, model: nn.Module, device: torch.device,
    lr_mults: dict[str, float] | None = None, quiet: bool = False,
) -> tuple[TrainConfig, LRFindResult]:  # fmt: skip
    """``cfg`` with the range test's suggestion as ``lr`` and where it came from as ``lr_reason``.

    Under torchrun every process sweeps its share of the batches (the loss averaged over all) and
    takes rank 0's numbers, so all train with the same rate.
    """
    from .device import is_main_process

    reporter = Reporter(enabled=is_main_process() and not quiet)
    reporter.print(f"lr-find: sweeping the learning rate from {START_LR:g} to {END_LR:g} over up to {STEPS} "
                   "training steps before training")  # fmt: skip
    result = find_lr(cfg, data, model, device, lr_mults=lr_mults, reporter=reporter)
    lr, reason = distributed.broadcast((result.suggestion, result.reason()))  # type: ignore[misc]
    reporter.print(f"lr-find: {result.stop_reason}; training with lr {lr:g} ({result.method}; steepest "
                   f"{result.candidates['steep']:g}, minimum/10 {result.candidates['minimum/10']:g})")  # fmt: skip
    return cfg.replace(lr=lr, lr_reason=reason), result


# ---------------------------------------------------------------------------- the API
def lr_find(
    config: TrainConfig | dict[str, Any] | str | Path | None = None, *, start_lr: float = START_LR,
    end_lr: float = END_LR, steps: int = STEPS, stop_factor: float = STOP_FACTOR, quiet: bool = True,
    **overrides: Any,
) -> LRFindResult:  # fmt: skip
    """The range test for the run ``cnnkit train`` would make of ``config`` and ``overrides``.

    Same data, split, augmentation, model, optimiser and device as :func:`~cnnkit.engine.train`
    (``cnnkit.lr_find(model="resnet20", batch_size=128)``); ``quiet=False`` shows a progress bar.
    """
    from .compiled import use_compile
    from .device import select_device, set_determinism
    from .model_setup import build_model
    from .train import load_data_for, resolve_augment, resolve_config

    check_range(start_lr, end_lr, steps)
    opts = {**config_mapping(config), **overrides}
    if opts.get("lr") == "find":  # the sweep replaces the rate; a `--config` recipe may say `lr: find`
        opts["lr"] = None
    cfg = resolve_config(TrainConfig.from_dict(opts))
    device = select_device(cfg.device)
    set_determinism(cfg.deterministic, device, compiled=use_compile(device, cfg.compile))
    data = load_data_for(cfg)
    cfg = resolve_augment(cfg, data)
    setup = build_model(cfg, data)
    return find_lr(cfg, data, setup.model, device, lr_mults=setup.lr_mults, start_lr=start_lr, end_lr=end_lr,
                   steps=steps, stop_factor=stop_factor, reporter=Reporter(enabled=not quiet))  # fmt: skip
