"""``--logger tensorboard``: the run, as TensorBoard shows it, in ``RUN/tensorboard/``.

A :class:`~cnnkit.engine.callbacks.Callback` writing, with PyTorch's ``SummaryWriter``:

* ``train/loss`` and ``train/lr`` per optimiser step (every ``log_every`` steps: by default a tenth
  of an epoch, at most 50, so reading the loss rarely waits for the GPU);
* ``epoch/train_loss``, ``epoch/train_acc``, ``epoch/val_loss``, ``epoch/val_acc`` per epoch (the
  ``metrics.csv`` row; x = epoch), and at the end ``best/val_loss``, ``best/val_acc``, ``best/epoch``;
* one batch of augmented training images (``train/augmented_batch``, de-normalised to [0, 1]): what
  the network really sees;
* the model graph, where ``torch.jit.trace`` can trace it (skipped quietly where it cannot);
* the config as hyperparameters, with the hparams plugin's own summaries (session start and end) in
  the run's own log folder, so ``tensorboard --logdir RUNS_DIR`` compares runs in the HParams tab
  against their final metrics (every scalar above; the ``best/`` ones are the comparable ones).

Logging never changes training: the graph is traced in eval mode with the random state and every
module's train/eval flag restored, and images are copied off the batch before the step.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
import warnings
from typing import TYPE_CHECKING, Any

import torch

from ..errors import ConfigError
from .callbacks import ORDER_LOGGER, Callback

if TYPE_CHECKING:
    from .loop import Trainer

LOG_DIR = "tensorboard"  # inside the run folder
# Config fields that say where things are, not how the run was trained: not hyperparameters.
_NOT_HPARAMS = ("name", "runs_dir", "data_root", "workers", "logger")


def require_tensorboard() -> None:
    """Fail at config time, in one line, when ``--logger tensorboard`` cannot work."""
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        raise ConfigError(
            '--logger tensorboard needs the tensorboard package: pip install "cnnkit[tensorboard]"'
        )


def hparams_of(cfg: dict[str, Any]) -> dict[str, bool | int | float | str]:
    """The config as TensorBoard hyperparameters: scalars as they are, mappings as JSON, unset ones left out."""
    out: dict[str, bool | int | float | str] = {}
    for k, v in cfg.items():
        if k in _NOT_HPARAMS or v is None:
            continue
        out[k] = v if isinstance(v, (bool, int, float, str)) else json.dumps(v, sort_keys=True)
    return out


class TensorBoardLogger(Callback):
    """Writes the run's TensorBoard logs into ``RUN/tensorboard/`` (rank 0 only: it needs ``trainer.run``)."""

    order = ORDER_LOGGER

    def __init__(self, log_every: int | None = None, images: int = 32, graph: bool = True) -> None:
        self.log_every, self.images, self.graph = log_every, images, graph
        self._writer: Any = None
        self._every = 1
        self._want_images = self._want_graph = False

    # ---------------------------------------------------------------- writer
    def writer(self, trainer: Trainer) -> Any:
        """The ``SummaryWriter``, opened on first use in the run's current folder."""
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(trainer.run.path / LOG_DIR))
        return self._writer

    def close(self) -> None:
        if self._writer is not None:
            w, self._writer = self._writer, None
            with contextlib.suppress(OSError):  # a folder removed under it (Ctrl-C in epoch 1)
                w.close()

    # ---------------------------------------------------------------- events
    def on_fit_start(self, trainer: Trainer) -> None:
        n = len(trainer.train_loader)
        self._every = self.log_every or max(1, min(50, n // 10))
        self._want_images, self._want_graph = self.images > 0, self.graph
        from tensorboard.plugins.hparams.summary_v2 import hparams_pb

        pb = hparams_pb(hparams_of(trainer.cfg.to_dict()), trial_id=trainer.cfg.name or trainer.run.path.name)
        self.writer(trainer).file_writer.add_summary(pb)

    def on_batch_start(self, trainer: Trainer, x: torch.Tensor, y: torch.Tensor) -> None:
        if self._want_images:
            self._want_images = False
            self._log_images(trainer, x)
        if self._want_graph:
            self._want_graph = False
            self._log_graph(trainer, x)

    def on_batch_end(self, trainer: Trainer, loss: torch.Tensor) -> None:
        step = trainer.step
        if step % self._every == 0:
            w = self.writer(trainer)
            w.add_scalar("train/loss", float(loss), step)
            w.add_scalar("train/lr", float(trainer.optimizer.param_groups[0]["lr"]), step)

    def on_epoch_end(self, trainer: Trainer, epoch: int, row: dict[str, Any]) -> None:
        w = self.writer(trainer)
        for key in ("train_loss", "train_acc", "val_loss", "val_acc", "lr"):
            if row.get(key, "") != "":
                w.add_scalar(f"epoch/{key}", float(row[key]), epoch + 1)
        w.flush()
        if trainer.run.staged:
            # The checkpoint after this moves a replacement run into place: reopen there next time.
            self.close()

    def on_fit_end(self, trainer: Trainer) -> None:
        try:
            if trainer.state.epoch:  # (Ctrl-C in the first epoch: the run folder is about to go)
                self._log_final(trainer)
        finally:
            self.close()

    # ---------------------------------------------------------------- what is written
    def _log_images(self, trainer: Trainer, x: torch.Tensor) -> None:
        from ..data import Normalize

        batch = x[: self.images].detach().float().cpu().contiguous()
        pixels = Normalize(trainer.data.mean, trainer.data.std).inverse(batch).clamp_(0, 1)
        self.writer(trainer).add_images("train/augmented_batch", pixels, trainer.step, dataformats="NCHW")

    def _log_graph(self, trainer: Trainer, x: torch.Tensor) -> None:
        """``add_graph`` where tracing works; nothing (and no output) where it does not."""
        model = trainer.model
        modes = [(m, m.training) for m in model.modules()]  # fine-tuning keeps frozen batch norm in eval
        rng = torch.get_rng_state()
        cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
                warnings.simplefilter("ignore")
                self.writer(trainer).add_graph(model, x[:2].detach())
        except Exception:  # models that do not trace (data-dependent control flow, ...): no graph
            pass
        finally:
            for m, training in modes:
                m.training = training
            torch.set_rng_state(rng)
            if cuda_rng is not None:
                torch.cuda.set_rng_state_all(cuda_rng)

    def _log_final(self, trainer: Trainer) -> None:
        """Best-epoch metrics (the HParams tab's comparable columns) and the session's end."""
        s = trainer.state
        w = self.writer(trainer)
        best = next((r for r in s.history if r["epoch"] == s.best_epoch), None)
        if best is not None:
            for key in ("val_loss", "val_acc"):
                if best.get(key, "") != "":
                    w.add_scalar(f"best/{key}", float(best[key]), s.epoch)
            w.add_scalar("best/epoch", float(s.best_epoch), s.epoch)
        from tensorboard.compat.proto.summary_pb2 import Summary
        from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

        status = api_pb2.STATUS_SUCCESS if trainer.error is None else api_pb2.STATUS_ABORTED
        data = plugin_data_pb2.HParamsPluginData(
            session_end_info=plugin_data_pb2.SessionEndInfo(status=status, end_time_secs=time.time())
        )
        pb = Summary()
        pb.value.add(tag=metadata.SESSION_END_INFO_TAG, metadata=metadata.create_summary_metadata(data),
                     tensor=metadata.NULL_TENSOR)  # fmt: skip
        w.file_writer.add_summary(pb)
