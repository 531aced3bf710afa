"""The training loop: epochs of mini-batch updates, validation, and the record of the best epoch.

One :class:`Trainer` owns a model, its optimiser and schedule. The loop is deliberately plain
(nanoGPT-style): every step is visible here. Everything optional (checkpoints, early stopping, the
progress table, loggers, fine-tuning's freezing phases) is a callback
(:mod:`cnnkit.engine.callbacks`) fired by event; that is the one extension point.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..config import TrainConfig
from ..data import Augment, DatasetSplits, ImageData, Normalize, TensorLoader, make_loader
from ..data.views import tta_views
from ..errors import CheckpointError, ConfigError, TrainingDiverged
from ..run import RunDir, WeightsMeta
from . import distributed
from .callbacks import Callback, default_callbacks, sort_callbacks
from .compiled import compile_net, first_compiled_step, use_compile
from .device import amp_dtype, autocast, is_main_process, rank_and_world, use_channels_last
from .header import batches_cap
from .losses import build_loss
from .optim import LRSchedule, build_optimizer, l1_penalty, load_optimizer_state
from .progress import Reporter


def epoch_seed(seed: int, epoch: int) -> int:
    """Seed of the global RNG (dropout, ...) for one epoch, so a resumed epoch replays exactly."""
    return (seed * 1_000_003 + epoch * 15_485_863 + 17) % (2**63 - 1)


def _logits(out: Any) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Main logits and auxiliary ones (GoogLeNet returns a tuple in training mode)."""
    if isinstance(out, torch.Tensor):
        return out, []
    if isinstance(out, Sequence):
        return out[0], [o for o in out[1:] if isinstance(o, torch.Tensor)]
    raise TypeError(f"model returned {type(out).__name__}, expected a tensor")


@torch.inference_mode()  # no autograd bookkeeping at all (cheaper than no_grad)
def evaluate_loader(
    model: nn.Module, loader: TensorLoader, loss_fn: nn.Module, amp: torch.dtype | None = None, tta: str | None = None
) -> dict[str, float]:
    """Loss, top-1 and top-5 accuracy of ``model`` over ``loader`` (eval mode).

    ``tta`` (flip, flip+shift): each image scored by its class probabilities averaged over the views of
    :func:`~cnnkit.data.views.tta_views`; their log goes to the loss as logits (softmax gives them back).
    """
    was = model.training
    model.eval()
    total, loss_sum, correct, correct5 = 0, 0.0, 0, 0
    for x, y in loader:
        with autocast(loader.device, amp):
            views = [_logits(model(v))[0].float() for v in tta_views(x, tta)]
        out = views[0] if len(views) == 1 else torch.stack([v.softmax(1) for v in views]).mean(0).clamp_min(1e-30).log()
        loss_sum += float(loss_fn(out, y)) * len(y)
        correct += int((out.argmax(1) == y).sum())
        k = min(5, out.shape[1])
        correct5 += int((out.topk(k, 1).indices == y[:, None]).any(1).sum())
        total += len(y)
    model.train(was)
    n = max(total, 1)
    return {"loss": loss_sum / n, "acc": correct / n, "top5": correct5 / n, "n": total}


def tta_note(test: dict[str, Any]) -> str:
    """``, TTA flip 94.10%`` for the printed test score when :meth:`Trainer.test_scores` added one."""
    t = test.get("tta")
    return f", TTA {t['views']} {t['acc']:.2%}" if t else ""


@dataclass
class TrainState:
    """What a checkpoint must hold to continue exactly where training stopped."""

    epoch: int = 0  # completed epochs
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    best_metric: float | None = None
    bad_epochs: int = 0
    stopped_early: bool = False  # a callback stopped training (early stopping, or any other)
    stop_reason: str = ""


# What :meth:`Trainer.checkpoint_state` writes and :meth:`Trainer.load_checkpoint_state` needs.
_CHECKPOINT_KEYS = ("model", "optimizer", "schedule", "scaler", "epoch", "history", "best_epoch", "best_metric",
                    "bad_epochs", "torch_rng")  # fmt: skip


class Trainer:
    """Fit ``model`` on ``data`` as ``cfg`` says, writing checkpoints into ``run`` (if given).

    ``callbacks`` join the standard ones (:func:`~cnnkit.engine.callbacks.default_callbacks`: the
    progress table, ``--early-stopping``, checkpoints and metrics when there is a ``run``, loggers);
    all fire sorted by their ``order``.
    """

    def __init__(
        self,
        model: nn.Module,
        cfg: TrainConfig,
        data: DatasetSplits,
        meta: WeightsMeta,
        run: RunDir | None,
        device: torch.device,
        reporter: Reporter | None = None,
        lr_mults: dict[str, float] | None = None,
        callbacks: Sequence[Callback] = (),
    ) -> None:
        cfg = cfg.with_defaults()  # a config built by hand (not through resolve_config): the general recipe
        self.cfg, self.data, self.meta, self.run, self.device = cfg, data, meta, run, device
        self.reporter = reporter or Reporter(enabled=False)
        standard = default_callbacks(cfg, run if is_main_process() else None, self.reporter)
        self.callbacks = sort_callbacks([*standard, *callbacks])
        self.amp = amp_dtype(device, cfg.amp)
        self.channels_last = use_channels_last(device, cfg.channels_last, model)
        self.model = model.to(device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if cfg.sync_bn and distributed.current().active:  # batch statistics over the global batch
            self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        # What the training step calls: the model itself, or its DDP wrapper (gradients averaged over
        # processes). Checkpoints, evaluation and callbacks use ``self.model``, never the wrapper.
        self.compile = use_compile(device, cfg.compile)  # --compile: torch.compile the training step
        self.compile_pending = self.compile  # the first compiled step checks that compiling works here
        self.net = self.wrap_net()
        self._eval_loaders: dict[int, TensorLoader] = {}
        self.loss_fn = build_loss(cfg.loss, cfg.label_smoothing)
        self.eval_loss_fn = build_loss(cfg.loss)  # validation loss without label smoothing
        rank, world = rank_and_world()
        self.world = world
        norm = Normalize(data.mean, data.std)
        aug = Augment.from_spec(cfg.augment)
        # --batch-size is the global batch: each of the ``world`` processes takes its share
        # (train() checks that it divides), so the learning rate means the same with any number.
        self.train_loader = make_loader(
            data.train, cfg.batch_size // world, norm, shuffle=True, augment=aug, seed=cfg.seed, device=device,
            rank=rank, world_size=world, channels_last=self.channels_last, workers=cfg.workers, strict=cfg.strict,
        )  # fmt: skip
        self.lr_mults = lr_mults
        self.optimizer = build_optimizer(self.model, cfg, lr_mults)
        self.schedule = LRSchedule(self.optimizer, cfg, len(self.train_loader))
        # fp16 needs loss scaling to keep small gradients; bfloat16 does not.
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp == torch.float16)
        self.state = TrainState()
        self.monitor_min = cfg.monitor.endswith("loss")
        # What callbacks read: the batch being trained (index in the epoch, global step), this
        # epoch's monitored value and whether it is the best so far, and the error that ended fit().
        self.batch = self.step = 0
        self.metric: float = float("nan")
        self.improved = False
        self.error: BaseException | None = None

    # ------------------------------------------------------------------ callbacks
    def fire(self, event: str, *args: Any) -> None:
        """Call ``event`` on every callback, in order."""
        for cb in self.callbacks:
            getattr(cb, event)(self, *args)

    @property
    def should_stop(self) -> bool:
        """Set by a callback to end training after the current epoch (recorded as stopped early)."""
        return self.state.stopped_early

    @should_stop.setter
    def should_stop(self, value: bool) -> None:
        self.state.stopped_early = bool(value)

    def stop(self, reason: str) -> None:
        """End training after the current epoch; ``reason`` is printed and kept in ``summary.json``."""
        self.state.stop_reason = reason
        self.should_stop = True

    # ------------------------------------------------------------------ helpers
    def loader(self, split: ImageData, batch_size: int | None = None) -> TensorLoader:
        """An evaluation loader over ``split``: large chunks (1024 images up to 64 px, else 256) in the run's layout."""
        norm = Normalize(self.data.mean, self.data.std)
        chunk = 1024 if max(self.data.image_shape[1:]) <= 64 else 256
        return make_loader(split, batch_size or max(chunk, self.cfg.batch_size), norm, device=self.device,
                           channels_last=self.channels_last, workers=self.cfg.workers, strict=self.cfg.strict)  # fmt: skip

    def set_epochs(self, epochs: int) -> None:
        """Change the run's length before it starts (``--time-budget``): the schedule spans the new length."""
        self.cfg = self.cfg.replace(epochs=epochs)
        self.schedule = LRSchedule(self.optimizer, self.cfg, len(self.train_loader))

    def rebuild_optimizer(self, lr_mults: dict[str, float] | None = None) -> None:
        """New optimiser over the currently trainable parameters (after unfreezing), same schedule."""
        self.lr_mults = lr_mults if lr_mults is not None else self.lr_mults
        self.optimizer = build_optimizer(self.model, self.cfg, self.lr_mults)
        self.net = self.wrap_net()  # DDP hooks only the parameters trained now (and a new graph compiles)
        self.compile_pending = self.compile
        plateau = self.schedule.state_dict()
        self.schedule = LRSchedule(self.optimizer, self.cfg, len(self.train_loader))
        self.schedule.load_state_dict(plateau)

    def wrap_net(self) -> nn.Module:
        """What the training step calls: the model, in DDP when distributed, under torch.compile with --compile."""
        net = distributed.wrap(self.model, self.device)
        return compile_net(net) if self.compile else net

    def _improved(self, value: float) -> bool:
        return self.better(value, self.state.best_metric)

    def better(self, value: float, than: float | None) -> bool:
        """Whether ``value`` of the monitored metric beats ``than`` (None: nothing to beat yet)."""
        return than is None or (value < than if self.monitor_min else value > than)

    def epoch_start_lr(self, epoch: int) -> float:
        """The (first group's) learning rate the schedule gives the first step of ``epoch`` (0-based)."""
        return self.schedule.factor(epoch * len(self.train_loader)) * self.schedule.base[0]

    def checkpoint_state(self) -> dict[str, Any]:
        """Everything resuming needs; callbacks add their own keys (``on_checkpoint_save``)."""
        s = self.state
        state = {
            "format": "cnnkit-checkpoint/1",
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(),
            "trainable": [n for n, p in self.model.named_parameters() if p.requires_grad],
            "epoch": s.epoch,
            "history": s.history,
            "best_epoch": s.best_epoch,
            "best_metric": s.best_metric,
            "bad_epochs": s.bad_epochs,
            "stopped_early": s.stopped_early,
            "stop_reason": s.stop_reason,
            "torch_rng": torch.get_rng_state(),
        }
        self.fire("on_checkpoint_save", state)
        return state

    def load_checkpoint_state(self, ck: dict[str, Any]) -> None:
        """Restore model, optimiser, schedule and counters from :meth:`checkpoint_state` output.

        A checkpoint that does not fit (another architecture's, keys missing, a run already trained
        to ``cfg.epochs``) raises :class:`CheckpointError` / :class:`ConfigError` before anything changes
        on disk.
        """
        where = str(self.run.checkpoint) if self.run is not None else "the checkpoint"
        missing = [k for k in _CHECKPOINT_KEYS if k not in ck]
        if missing:
            raise CheckpointError(f"checkpoint {where!r} is incomplete (no {', '.join(missing)})",
                                  hint="it was not written by this version of cnnkit, or it was edited")  # fmt: skip
        try:
            state = TrainState(int(ck["epoch"]), list(ck["history"]), int(ck["best_epoch"]),
                               None if ck["best_metric"] is None else float(ck["best_metric"]),
                               int(ck["bad_epochs"]), bool(ck.get("stopped_early", False)),
                               str(ck.get("stop_reason") or ""))  # fmt: skip
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"checkpoint {where!r} is damaged (its counters are not numbers: {e})",
                                  hint="restore it from a copy, or use the run's weights as they are") from None
        if state.epoch < 0:
            raise CheckpointError(f"checkpoint {where!r} is damaged (epoch {state.epoch})",
                                  hint="restore it from a copy, or use the run's weights as they are")  # fmt: skip
        if state.stopped_early:
            why = state.stop_reason or "early stopping"
            raise ConfigError(f"the run stopped early after epoch {state.epoch} ({why}): there is nothing to "
                              "continue", hint="train longer in a new run (with --early-stopping: a larger "
                              "one)")  # fmt: skip
        if state.epoch >= self.cfg.epochs:
            raise ConfigError(
                f"the run has already trained {state.epoch} of its {self.cfg.epochs} epochs; --epochs "
                f"{self.cfg.epochs} leaves nothing to continue",
                hint=f"pass --epochs N with N > {state.epoch} to train it longer",
            )
        try:
            self.model.load_state_dict(ck["model"])
        except (RuntimeError, TypeError, AttributeError) as e:
            first = " ".join(str(e).split("\n\t")[:2]).replace("\n", " ")[:300]
            raise CheckpointError(f"checkpoint {where!r} does not fit model {self.cfg.model!r}: {first}",
                                  hint="the checkpoint belongs to another model or run; restore the run's own "
                                  "checkpoint.pt") from None  # fmt: skip
        names = set(ck.get("trainable") or [])
        if names:  # the trainable set decides the optimiser's parameter groups (fine-tuning phases)
            for n, p in self.model.named_parameters():
                p.requires_grad_(n in names)
            self.rebuild_optimizer()
        try:
            load_optimizer_state(self.optimizer, ck["optimizer"])
            self.schedule.load_state_dict(ck["schedule"])
            self.scaler.load_state_dict(ck["scaler"])
            rng = ck["torch_rng"]
            if not isinstance(rng, torch.Tensor) or rng.dtype != torch.uint8:
                raise TypeError("torch_rng is not a byte tensor")
        except (RuntimeError, TypeError, ValueError, KeyError, IndexError, AttributeError) as e:
            raise CheckpointError(f"checkpoint {where!r} is damaged (optimiser or schedule state: "
                                  f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"[:400],
                                  hint="restore it from a copy, or use the run's weights as they are") from None  # fmt: skip
        self.state = state
        torch.set_rng_state(rng)
        self.fire("on_checkpoint_load", ck)

    # ------------------------------------------------------------------ the loop
    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimiser update on the batch ``(x, y)`` at the current learning rate: (loss, logits).

        The whole training step (autocast, auxiliary heads, L1, divergence check, loss scaling, clipping);
        ``cnnkit lr-find`` and ``cnnkit bench`` call it too, so what they measure is what training runs.
        """
        if self.compile_pending:  # compiling happens in the first step, and may fail (engine/compiled.py)
            return first_compiled_step(self, x, y)
        cfg, model, opt = self.cfg, self.model, self.optimizer
        with autocast(self.device, self.amp):
            out, aux = _logits(self.net(x))
            loss = self.loss_fn(out.float(), y)
            for a in aux:  # GoogLeNet's auxiliary classifiers, weighted 0.3 as in the paper
                loss = loss + 0.3 * self.loss_fn(a.float(), y)
        if cfg.l1 > 0:
            loss = loss + cfg.l1 * l1_penalty(model.parameters())
        if not torch.isfinite(loss.detach()):
            base_lr = max(g.get("initial_lr", g["lr"]) for g in opt.param_groups)
            raise TrainingDiverged(
                f"the loss became {loss.detach().item()} at epoch {self.step // max(len(self.train_loader), 1) + 1}, "
                f"batch {self.batch + 1}",
                hint=f"lower the learning rate (now --lr {base_lr:g}), e.g. --lr {base_lr / 10:g}, or warm "
                "up with --warmup-epochs 1",
            )
        opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.fire("on_after_backward")
        if cfg.grad_clip > 0:
            self.scaler.unscale_(opt)
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        self.scaler.step(opt)
        self.scaler.update()
        return loss, out

    def train_one_epoch(self, epoch: int) -> dict[str, float]:
        torch.manual_seed(epoch_seed(self.cfg.seed, epoch))
        self.train_loader.set_epoch(epoch)
        n_batches = len(self.train_loader)
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        seen = 0
        cap = batches_cap()  # $CNNKIT_MAX_BATCHES: the README test's quick runs; None otherwise
        for b, (x, y) in enumerate(self.train_loader):
            if cap is not None and b >= cap:
                break
            self.batch, self.step = b, epoch * n_batches + b
            self.schedule.set_step(self.step)
            self.fire("on_batch_start", x, y)
            loss, out = self.train_step(x, y)
            loss_sum += loss.detach() * len(y)
            correct += (out.argmax(1) == y).sum()
            seen += len(y)
            # The live bar shows the epoch's running loss and throughput: the same sums as the epoch row.
            self.reporter.running(loss_sum, seen, self.world)
            self.fire("on_batch_end", loss.detach())
        loss_total, correct_total, seen_total = distributed.sum_all(loss_sum, correct, seen)  # over every process
        return {"loss": loss_total / max(seen_total, 1), "acc": correct_total / max(seen_total, 1)}

    def evaluate(self, split: ImageData, tta: str | None = None) -> dict[str, float]:
        """Loss, top-1 and top-5 of ``self.model`` on ``split`` (``tta``: averaged over test-time views), over
        every process's share of it.

        In a distributed run each process evaluates every ``world``-th image (no padding, so no image
        counts twice) and the sums are added up: the numbers equal a single-process evaluation.
        """
        loader = self._eval_loaders.get(id(split))
        if loader is None:  # made once per split: on a GPU it holds the split's images there
            rank, world = rank_and_world()
            part = split.subset(torch.arange(rank, len(split), world)) if world > 1 else split
            loader = self._eval_loaders[id(split)] = self.loader(part)
        r = evaluate_loader(self.model, loader, self.eval_loss_fn, self.amp, tta)
        n = r["n"]
        loss, acc, top5, total = distributed.sum_all(r["loss"] * n, r["acc"] * n, r["top5"] * n, n)
        total_n = max(total, 1)
        return {"loss": loss / total_n, "acc": acc / total_n, "top5": top5 / total_n, "n": int(total)}

    def test_scores(self, split: ImageData) -> dict[str, Any]:
        """The plain scores on ``split`` and, with ``--tta``, under ``"tta"`` those averaged over its views."""
        r: dict[str, Any] = self.evaluate(split)
        if self.cfg.tta not in (None, "none"):
            r["tta"] = {"views": self.cfg.tta, **self.evaluate(split, self.cfg.tta)}
        return r

    def fit(self) -> TrainState:
        """Train from ``self.state.epoch`` to ``cfg.epochs`` (or until a callback stops training)."""
        self.error = None
        try:
            self.fire("on_fit_start")
            self._fit()
        except BaseException as e:
            self.error = e
            raise
        finally:
            self._fit_end()
        return self.state

    def _fit(self) -> None:
        cfg, s = self.cfg, self.state
        while s.epoch < cfg.epochs and not self.should_stop:
            epoch = s.epoch
            self.model.train()
            self.fire("on_epoch_start", epoch)
            lr = self.epoch_start_lr(epoch)
            t0 = time.perf_counter()
            tr = self.train_one_epoch(epoch)
            val = self.evaluate(self.data.val) if len(self.data.val) else None
            row = {
                "epoch": epoch + 1,
                "train_loss": round(tr["loss"], 6),
                "train_acc": round(tr["acc"], 6),
                "val_loss": round(val["loss"], 6) if val else "",
                "val_acc": round(val["acc"], 6) if val else "",
                "lr": float(f"{lr:.6g}"),  # 0.0058, not the product's 0.0058000000000000005
                "time_s": round(time.perf_counter() - t0, 3),
            }
            metric = val["loss" if self.monitor_min else "acc"] if val else tr["loss"]
            self.schedule.end_epoch(metric)
            s.epoch = epoch + 1
            s.history.append(row)
            self.metric, self.improved = metric, self._improved(metric)
            if self.improved:
                s.best_metric, s.best_epoch, s.bad_epochs = metric, epoch + 1, 0
            else:
                s.bad_epochs += 1
            self.fire("on_epoch_end", epoch, row)

    def _fit_end(self) -> None:
        """``on_fit_end`` for every callback; after an error, theirs never hides the one that ended training."""
        if self.error is None:
            self.fire("on_fit_end")
            return
        for cb in self.callbacks:
            with contextlib.suppress(Exception):  # the error in flight is the one to report
                cb.on_fit_end(self)
