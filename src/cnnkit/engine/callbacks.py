"""Callbacks: the one way to extend the training loop (after fastai's ``Callback`` and Lightning's hooks).

The loop in :mod:`cnnkit.engine.loop` does the maths (forward, loss, backward, step, validate) and
keeps the record (history, best epoch); everything optional hooks in by event. A callback subclasses
:class:`Callback` and overrides the events it needs; each gets the :class:`~cnnkit.engine.loop.Trainer`
first, so it can read or change ``trainer.model``, ``trainer.optimizer``, ``trainer.state``,
``trainer.cfg``, ``trainer.run`` (``None`` on ranks other than 0) and ``trainer.reporter``.

Events, in the order one epoch fires them::

    on_fit_start
      on_epoch_start(epoch)                    # epoch is 0-based; the model is in train mode
        on_batch_start(x, y)                   # trainer.batch (in the epoch), trainer.step (global)
        on_after_backward()                    # gradients exist (scaled under fp16 mixed precision)
        on_batch_end(loss)                     # the batch's loss, a detached tensor (no sync)
      on_epoch_end(epoch, row)                 # row: the metrics.csv row; trainer.improved, .metric
    on_fit_end                                 # always, also after an error (trainer.error says which)

plus ``on_checkpoint_save(state)`` (add keys to the checkpoint dict about to be written) and
``on_checkpoint_load(state)`` (read them back on ``--resume``). Callbacks run sorted by ``order``
(lower first; the same order keeps the given order). A callback stops training with
``trainer.stop("why")`` (or ``trainer.should_stop = True``): the current epoch finishes and is saved,
then the loop ends; ``summary.json`` records ``"status": "stopped early"`` and the reason.

The standard callbacks, which :class:`~cnnkit.engine.loop.Trainer` adds itself
(:func:`default_callbacks`): :class:`EarlyStopping` (``--early-stopping N``), :class:`Checkpoint`
(weights, ``checkpoint.pt``, ``metrics.csv``), :class:`ProgressPrinter` (the epoch table) and, with
``--logger tensorboard``, :class:`~cnnkit.engine.tensorboard.TensorBoardLogger`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from ..config import TrainConfig
    from ..run import RunDir
    from .loop import Trainer
    from .progress import Reporter

# Orders of the standard callbacks: changes to what trains first, records and output last.
ORDER_UNFREEZE = -20  # fine-tuning: which parameters train (before anything looks at them)
ORDER_TRAIN_MODE = -10  # fine-tuning: frozen batch norm in eval mode (after unfreezing)
ORDER_EARLY_STOP = 50  # decides to stop before the checkpoint records it
ORDER_LOGGER = 60  # loggers: before the checkpoint, which may move a replacement run into place
ORDER_CHECKPOINT = 80  # writes what every callback before it decided
ORDER_PROGRESS = 90  # prints the row (and why training stops) once it is saved


class Callback:
    """Base class: every event is a no-op; override the ones you need."""

    order: int = 0

    def on_fit_start(self, trainer: Trainer) -> None:
        pass

    def on_fit_end(self, trainer: Trainer) -> None:
        pass

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        pass

    def on_epoch_end(self, trainer: Trainer, epoch: int, row: dict[str, Any]) -> None:
        pass

    def on_batch_start(self, trainer: Trainer, x: torch.Tensor, y: torch.Tensor) -> None:
        pass

    def on_after_backward(self, trainer: Trainer) -> None:
        pass

    def on_batch_end(self, trainer: Trainer, loss: torch.Tensor) -> None:
        pass

    def on_checkpoint_save(self, trainer: Trainer, state: dict[str, Any]) -> None:
        pass

    def on_checkpoint_load(self, trainer: Trainer, state: dict[str, Any]) -> None:
        pass


def sort_callbacks(callbacks: list[Callback]) -> list[Callback]:
    """Callbacks in firing order; anything that is not a :class:`Callback` is refused with its name."""
    from ..errors import ConfigError

    for cb in callbacks:
        if not isinstance(cb, Callback):
            raise ConfigError(f"callback {cb!r} is not a cnnkit.engine.callbacks.Callback",
                              hint="subclass Callback and override the events you need")  # fmt: skip
    return sorted(callbacks, key=lambda cb: cb.order)


class EarlyStopping(Callback):
    """Stop when ``--monitor`` has not improved for ``patience`` epochs (the loop counts them)."""

    order = ORDER_EARLY_STOP

    def __init__(self, patience: int, monitor: str) -> None:
        self.patience, self.monitor = patience, monitor

    def on_epoch_end(self, trainer: Trainer, epoch: int, row: dict[str, Any]) -> None:
        s = trainer.state
        if self.patience and s.bad_epochs >= self.patience:
            trainer.stop(f"early stopping: {self.monitor} did not improve for {self.patience} epochs "
                         f"(best {s.best_metric:.4f} at epoch {s.best_epoch})")  # fmt: skip


class Checkpoint(Callback):
    """Each epoch: ``best`` (when improved) and ``last`` weights, ``checkpoint.pt``, ``metrics.csv``.

    Order matters for resuming: weights first, then the checkpoint that points past them, then the
    metrics table (rebuilt from the checkpoint's history). An ``--overwrite`` replacement is swapped
    into place by its first checkpoint (:meth:`~cnnkit.run.RunDir.save_checkpoint`).
    """

    order = ORDER_CHECKPOINT

    def __init__(self, run: RunDir) -> None:
        self.run = run

    def on_epoch_end(self, trainer: Trainer, epoch: int, row: dict[str, Any]) -> None:
        if trainer.improved:
            self._save_weights(trainer, "best", epoch + 1)
        self._save_weights(trainer, "last", epoch + 1)
        self.run.save_checkpoint(trainer.checkpoint_state())
        self.run.write_metrics(trainer.state.history)

    def _save_weights(self, trainer: Trainer, which: str, epoch: int) -> None:
        from ..run import save_weights

        m = trainer.meta
        m.epoch, m.metric = epoch, {"name": trainer.cfg.monitor, "value": trainer.metric}
        save_weights(trainer.model, self.run.weights(which), m)


class ProgressPrinter(Callback):
    """The terminal output: a header, a live batch bar, one row per epoch (``*``: best so far)."""

    order = ORDER_PROGRESS

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter

    def on_fit_start(self, trainer: Trainer) -> None:
        s = trainer.state
        self.reporter.print(f"  (* marks an epoch whose {trainer.cfg.monitor.replace('_', ' ')} is the best so far: "
                            "its weights are saved as best.safetensors)")  # fmt: skip
        self.reporter.header(trainer.cfg.epochs)
        best = None
        for row in s.history:  # a resumed run shows the epochs it already has, marked as they were
            # The metric the loop compared after that epoch (Trainer._fit): validation, else training loss.
            key = ("val_loss" if trainer.monitor_min else "val_acc") if row.get("val_loss", "") != "" else "train_loss"
            value = float(row[key])
            improved = trainer.better(value, best)
            best = value if improved else best
            self.reporter.row(row, best=improved)

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        self.reporter.start_epoch(epoch + 1, len(trainer.train_loader))

    def on_batch_end(self, trainer: Trainer, loss: torch.Tensor) -> None:
        self.reporter.advance()

    def on_epoch_end(self, trainer: Trainer, epoch: int, row: dict[str, Any]) -> None:
        self.reporter.end_epoch()
        self.reporter.row(row, best=trainer.improved)
        if trainer.should_stop and trainer.state.stop_reason:
            self.reporter.print(trainer.state.stop_reason)

    def on_fit_end(self, trainer: Trainer) -> None:
        self.reporter.end_epoch()  # an error or Ctrl-C mid-epoch: take the live bar down


def default_callbacks(cfg: TrainConfig, run: RunDir | None, reporter: Reporter) -> list[Callback]:
    """The callbacks every :class:`~cnnkit.engine.loop.Trainer` has: what ``cfg`` asks for.

    ``run`` is ``None`` on ranks other than 0 (and for a trainer without a run folder): nothing is
    written there.
    """
    cbs: list[Callback] = [ProgressPrinter(reporter)]
    if cfg.early_stopping:
        cbs.append(EarlyStopping(cfg.early_stopping, cfg.monitor))
    if run is not None:
        cbs.append(Checkpoint(run))
        if cfg.logger == "tensorboard":
            from .tensorboard import TensorBoardLogger

            cbs.append(TensorBoardLogger())
    return cbs
