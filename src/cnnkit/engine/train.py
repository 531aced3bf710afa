"""``cnnkit.train``: config in, trained run folder out."""

from __future__ import annotations

import platform
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._version import __version__
from ..config import TrainConfig, config_mapping
from ..data import Augment, DatasetSplits, dataset_entry, load_dataset
from ..data.auto_augment import auto_reason, choose_augment, reason_matches
from ..data.files import peek_side
from ..errors import CheckpointError, ConfigError, Interrupted, TrainingDiverged
from ..io import atomic_write_json, check_output_dir, remove_stale_temps
from ..models import count_params, model_entry
from ..run import RunDir, RunLock, WeightsMeta, read_weights
from . import distributed
from .callbacks import Callback
from .compiled import use_compile
from .device import is_main_process, select_device, set_determinism
from .header import base_dataset, capped_resume, epochs_cap, intro_lines, resume_lines
from .loop import Trainer, tta_note
from .lr_find import lr_reason_matches, wants_lr_find, with_found_lr
from .model_setup import ModelSetup, build_model
from .progress import Reporter
from .resume import RESUME_FILE, RESUME_FORMAT, check_split, register_run_file, resume_command  # noqa: F401


@dataclass
class TrainResult:
    """What :func:`train` returns: where the run is and how it did."""

    run_dir: Path
    test: dict[str, float]
    val: dict[str, float]
    best_epoch: int
    epochs_run: int
    stopped_early: bool
    history: list[dict[str, Any]]
    summary: dict[str, Any]

    @property
    def test_accuracy(self) -> float:
        return self.test["acc"]


def recipe_of(model: str) -> dict[str, Any]:
    """The training settings a registered model recommends (empty for torchvision:/timm: models)."""
    return dict(model_entry(model).recipe) if ":" not in model else {}


def resolve_config(cfg: TrainConfig) -> TrainConfig:
    """Fill in what ``auto``/``None`` stand for, so config.yaml records what actually ran."""
    entry = model_entry(cfg.model) if ":" not in cfg.model else None
    upd: dict[str, Any] = {}
    if cfg.input_size is None:
        size = entry.default_input[1] if entry else 224
        base = base_dataset(cfg.data)  # an empty base ("subset:?...") is left to the subset source's error
        known = dataset_entry(base) if base else None
        side = max(known.image_shape[1:]) if known is not None else peek_side(base)
        if side is not None and side < 64:
            # Small-image datasets (digits, MNIST, CIFAR): use the models' small-input stems at
            # 32 px instead of upsampling 8-32 px images to an ImageNet model's 224.
            size = min(size, 32)
        upd["input_size"] = size
    if cfg.time_budget is not None and cfg.epochs is not None:
        raise ConfigError(f"--time-budget {cfg.time_budget:g} and --epochs {cfg.epochs} both set the run's length",
                          hint="give one of them")  # fmt: skip
    # Options the user left unset take the model's recipe, else their general default.
    cfg = cfg.with_defaults(entry.recipe if entry else {})
    if cfg.lr_reason is not None and not lr_reason_matches(cfg.lr, cfg.lr_reason):  # a replay with another --lr
        upd["lr_reason"] = None
    # `auto` stays until the training images are loaded (resolve_augment); a given spec is checked now and
    # recorded in its canonical form, keeping a replayed config's reason only if it was written for that spec.
    if cfg.augment != "auto":
        upd["augment"] = Augment.from_spec(cfg.augment).to_spec()
        if not reason_matches(upd["augment"], cfg.augment_reason):
            upd["augment_reason"] = None
    if cfg.epochs_reason and not cfg.epochs_reason.endswith(f"-> {cfg.epochs} epoch(s)"):
        upd["epochs_reason"] = None  # a replayed config whose epochs were changed since
    if cfg.name is None:
        upd["name"] = RunDir.new_name(cfg.model, cfg.data)
    cap = epochs_cap()
    if cap is not None and cfg.epochs > cap:  # CI and the README test shorten runs; config.yaml records it
        upd["epochs"] = cap
    return cfg.replace(**upd)


def data_config(data: str | None = None, base: dict[str, Any] | None = None, source: str = "config",
                **options: Any) -> TrainConfig:  # fmt: skip
    """How a command that does not train reads its data (``features``, ``retrieve``, ``show-batch``).

    ``base`` (a run's ``config.yaml``; nothing: the defaults) with ``data`` and the ``options`` that are
    not ``None`` on top, resolved by :func:`resolve_config`: the split, seed and image size follow the
    same rules as ``cnnkit train`` (a second copy of its defaults elsewhere would drift).
    """
    given = {k: v for k, v in options.items() if v is not None}
    if data is not None:
        given["data"] = data
    return resolve_config(TrainConfig.from_dict({**(base or {}), **given}, source=source))


def resolve_augment(cfg: TrainConfig, data: DatasetSplits) -> TrainConfig:
    """``--augment auto`` resolved from the loaded training images (:func:`~cnnkit.data.choose_augment`).

    The spec and its reason go into the config, so config.yaml records both and a resumed or replayed
    run uses the same spec.
    """
    if cfg.augment != "auto":
        return cfg
    choice = choose_augment(data, seed=cfg.seed, cache=cfg.cache)
    return cfg.replace(augment=choice.spec, augment_reason=auto_reason(choice.spec, choice.reason))


def load_data_for(cfg: TrainConfig, channels: int | None = None) -> DatasetSplits:
    """The dataset as a run's config describes it (same split, same size; ``channels`` to convert to)."""
    return load_dataset(
        cfg.data, input_size=cfg.input_size, channels=channels, val_split=cfg.val_split, test_split=cfg.test_split,
        seed=cfg.seed, root=cfg.data_root, download=cfg.download,
        strict=cfg.strict, memory_budget_mb=cfg.memory_budget_mb, cache=cfg.cache, shuffle_buffer=cfg.shuffle_buffer,
    )  # fmt: skip


def library_versions() -> dict[str, str]:
    """The versions summary.json records, read from the installed packages' metadata (importing
    scikit-learn just for its version took 0.4 s of every run)."""
    from importlib.metadata import PackageNotFoundError, version

    import torchvision  # imported by the models already; its __version__ names the build (+cu130)

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    return {
        "cnnkit": __version__, "python": platform.python_version(), "torch": torch.__version__,
        "torchvision": torchvision.__version__, "numpy": installed("numpy"), "scikit-learn": installed("scikit-learn"),
        "safetensors": installed("safetensors"),
    }  # fmt: skip


def train(
    config: TrainConfig | dict[str, Any] | str | Path | None = None,
    *,
    resume: str | Path | None = None,
    overwrite: bool = False,
    quiet: bool = False,
    model_fn: Callable[[TrainConfig, DatasetSplits], nn.Module | ModelSetup] | None = None,
    callbacks: Sequence[Callback] = (),
    lr_mults: dict[str, float] | None = None,
    source: str = "trained from scratch",
    command: str = "train",
    **overrides: Any,
) -> TrainResult:
    """Train a model and record the run; returns a :class:`TrainResult`.

    ``config`` may be a :class:`TrainConfig`, a mapping or a YAML path; keyword ``overrides`` win
    (``cnnkit.train(model="lenet5", epochs=5)``). ``resume=RUN_DIR`` continues an interrupted run from
    its last checkpoint with the run's own config (``epochs`` may be raised to train longer).

    ``callbacks``: :class:`~cnnkit.engine.callbacks.Callback` objects hooked into the loop (after the
    standard ones of the same order). For commands built on ``train`` (fine-tuning): ``model_fn(cfg,
    data)`` builds the model instead of ``create_model`` and may return a :class:`ModelSetup`;
    ``lr_mults`` (parameter-name prefix -> learning-rate multiplier) goes to the optimiser;
    ``source`` is recorded in the weights' sidecar; ``command`` is the ``cnnkit`` command that
    continues the run (recorded in ``resume.json``; ``resume`` refuses a run another command made).
    """
    t_start = time.perf_counter()
    find = False  # --lr find: the range test chooses the rate once the data and model are built
    if resume is not None:
        run = RunDir(resume)
        if not run.config.is_file():
            raise CheckpointError(f"{str(run.path)!r} is not a run folder (no config.yaml)", hint="pass the folder of the run to continue")
        made_by = resume_command(run)
        if made_by != command:  # another command rebuilds its model and callbacks (e.g. source weights)
            raise ConfigError(
                f"{str(run.path)!r} is a `cnnkit {made_by}` run, which `cnnkit {command} --resume` cannot continue",
                hint=f"continue it with: cnnkit {made_by} --resume {run.path}",
            )
        base = run.read_config()
        # Every run file resume reads, read now: a damaged one must fail before an epoch is trained
        # and the checkpoint, weights and metrics are rewritten (summary.json is otherwise read last).
        run.read_summary()
        run.read_split()
        allowed = {"epochs", "device", "amp", "workers", "data_root", "memory_budget_mb", "cache", "logger"}
        bad = set(overrides) - allowed
        if bad:
            raise ConfigError(
                f"--resume continues a run with its own config; cannot change {', '.join(sorted(bad))}",
                hint="start a new run instead, or only change: " + ", ".join(sorted(allowed)),
            )
        overrides = capped_resume(overrides, base)
        cfg = TrainConfig.from_dict({**base, **overrides}, source=str(run.config))
        intro: Callable[[TrainConfig, bool], list[str]] = lambda c, auto: []  # noqa: E731
    else:
        file_opts = config_mapping(config)
        find = wants_lr_find(file_opts, overrides)
        raw = TrainConfig.from_dict({**file_opts, **overrides, **({"lr": None} if find else {})})
        cfg = resolve_config(raw)
        # The header is written once the data is loaded: `--augment auto` is chosen from the images.
        def intro(c: TrainConfig, auto: bool) -> list[str]:
            return intro_lines(config, file_opts, overrides, raw, c, recipe_of(c.model), auto)

        run = RunDir(Path(cfg.runs_dir) / cfg.name)
    main = is_main_process()
    owns_group = not distributed.is_initialized()  # a group the caller set up is the caller's to end
    # An unavailable --device fails before anything is written; under torchrun, join the group.
    world, _ = distributed.setup(select_device(cfg.device))
    if world.active:
        if cfg.batch_size % world.size:
            raise ConfigError(f"--batch-size {cfg.batch_size} does not split over {world.size} processes",
                              hint=f"--batch-size is the global batch: use a multiple of {world.size}")  # fmt: skip
        if resume is None:  # one run folder for every process: rank 0's name (a default one holds its clock)
            cfg = cfg.replace(name=distributed.broadcast(cfg.name))
            run = RunDir(Path(cfg.runs_dir) / cfg.name)
    if cfg.logger == "tensorboard":
        from .tensorboard import require_tensorboard

        require_tensorboard()
    if resume is None:
        check_output_dir(cfg.runs_dir, "--runs-dir")  # before any work: a file or unwritable folder fails now
    # One writer per run: a second process on the same name (even with --overwrite) is refused.
    lock = RunLock(run.path).acquire() if main else None
    try:
        return _train_locked(cfg, run, resume, overwrite, quiet, model_fn, callbacks, lr_mults, source, command,
                             intro, t_start, find)  # fmt: skip
    except BaseException:
        if main and run.staged:  # a replacement that never reached its first checkpoint
            run.discard_staged()
        raise
    finally:
        if lock is not None:
            lock.release()
        if owns_group:
            distributed.teardown()


def _fit_to_budget(trainer: Trainer, cfg: TrainConfig) -> TrainConfig:
    """``--time-budget``: measure, fix the epoch count (the same on every process), record how it was chosen.

    config.yaml then holds ``epochs: N`` and no budget, so replaying it trains the same run.
    """
    from .budget import fit_epochs_to_budget

    epochs, reason = distributed.broadcast(fit_epochs_to_budget(trainer, cfg.time_budget))
    cap = epochs_cap()
    if cap is not None and epochs > cap:
        epochs, reason = cap, f"{reason}, capped at {cap} by $CNNKIT_MAX_EPOCHS"
    trainer.set_epochs(epochs)
    return cfg.replace(epochs=epochs, time_budget=None, epochs_reason=reason)


def _train_locked(
    cfg: TrainConfig, run: RunDir, resume: str | Path | None, overwrite: bool, quiet: bool,
    model_fn: Callable[[TrainConfig, DatasetSplits], nn.Module | ModelSetup] | None, callbacks: Sequence[Callback],
    lr_mults: dict[str, float] | None, source: str, command: str,
    intro: Callable[[TrainConfig, bool], list[str]], t_start: float, find: bool = False,
) -> TrainResult:  # fmt: skip
    """The body of :func:`train`, run while this process holds the run's lock."""
    main = is_main_process()
    device = distributed.setup(select_device(cfg.device))[1]  # cuda:LOCAL_RANK under torchrun
    set_determinism(cfg.deterministic, device, compiled=use_compile(device, cfg.compile))

    # Data first: the model is built for the data's channels and class count.
    t0 = time.perf_counter()
    data = load_data_for(cfg)
    t_data = time.perf_counter() - t0
    auto_chosen = cfg.augment == "auto"
    if auto_chosen:  # chosen from the training images, now that they are loaded
        cfg = resolve_augment(cfg, data)
    setup = build_model(cfg, data, model_fn, new_run=resume is None)  # seeded: same seed, same initial weights
    c, h, w = data.image_shape
    model = setup.model
    if setup.lr_mults is not None:
        lr_mults = {**(lr_mults or {}), **setup.lr_mults}
    found = None
    if find:  # on a copy of the model, RNG restored: training then runs as `--lr <the number>` would
        cfg, found = with_found_lr(cfg, data, model, device, lr_mults, quiet=quiet)
    final_path = run.path  # where the run ends up (an --overwrite replacement is staged beside it)
    # The folder is made only once data and model are known to work: a rejected run leaves nothing.
    if resume is None and main:
        run.create(overwrite=overwrite)
        cfg.to_yaml(run.config)
        atomic_write_json(run.path / RESUME_FILE, {"format": RESUME_FORMAT, "command": command})
        atomic_write_json(run.split, {"dataset": cfg.data, "classes": data.classes, **data.split_ids()})
        _write_skipped(run, data)
        if found is not None:
            found.plot(run.path / "lr_find.png", title=f"{run.path.name}: lr-find suggested {cfg.lr:g} ({found.method})")
    elif resume is not None:
        check_split(run, data)
        remove_stale_temps(run.path)
    reporter = Reporter(enabled=main and not quiet, log=run.append_log if main else None)
    meta = WeightsMeta(
        model=cfg.model, model_args=cfg.model_args, num_classes=data.num_classes, classes=data.classes,
        input_size=[c, h, w], mean=list(data.mean), std=list(data.std), dataset=cfg.data, source=source,
    )  # fmt: skip
    trainer = Trainer(model, cfg, data, meta, run if main else None, device, reporter, lr_mults=lr_mults,
                      callbacks=callbacks)  # fmt: skip
    if resume is None and cfg.time_budget is not None:  # the epochs that fit, fixed before the first step
        cfg = _fit_to_budget(trainer, cfg)
        if main:
            cfg.to_yaml(run.config)
    header = intro(cfg, auto_chosen)
    ck = run.load_checkpoint() if resume is not None else None  # a bad checkpoint fails before log.txt grows
    before = run.read_config().get("epochs") if ck is not None else None  # the length the run had so far
    if ck is not None:
        trainer.load_checkpoint_state(ck)
        # --epochs N: record the new length, once the checkpoint is known to continue (a refused
        # resume leaves every file of the run as it was).
        if main and cfg.epochs != before:
            cfg.to_yaml(run.config)
    for line in data.info.get("messages", []):  # how the data was loaded (cache hit, streaming, ...)
        reporter.print(line)
    for line in data.info.get("warnings", []):  # skipped files, class imbalance
        reporter.print(f"warning: {line}")
    if cfg.logger == "tensorboard":
        reporter.print(f"TensorBoard logs go to {final_path / 'tensorboard'}; watch with: tensorboard --logdir "
                       f"{final_path.parent}")  # fmt: skip
    if resume is not None:
        done = trainer.state.epoch
        for line in resume_lines(run.path, done, cfg, before, trainer.epoch_start_lr(done)):
            reporter.print(line)
    else:
        n, nt = count_params(model), count_params(model, trainable_only=True)
        extra = (f", {n - nt:,} frozen" if nt < n else "") + (f", starting from {cfg.weights}" if cfg.weights else "")
        reporter.print(
            f"training {cfg.model} ({n:,} parameters{extra}) on {cfg.data}: {len(data.train)} train / {len(data.val)} val / "
            f"{len(data.test)} test images of {c}x{h}x{w}, {data.num_classes} classes, on {device.type}"
        )
        for line in header:
            reporter.print(line)
    world = distributed.current()
    if world.active:
        reporter.print(f"data-parallel over {world.size} processes ({world.backend}): global batch {cfg.batch_size} = "
                       f"{cfg.batch_size // world.size} per process; --lr applies to the global batch")  # fmt: skip
    t_train0 = time.perf_counter()
    try:
        with distributed.stop_on_sigterm():
            state = trainer.fit()
    except TrainingDiverged as e:
        e.hint = (e.hint or "") + "; " + _what_was_kept(run, trainer.state.epoch, command, diverged=True)
        if main and not run.staged:
            reporter.print(f"stopped: {e.message}")
            run.write_summary({"run": str(run.path), "status": "diverged", "error": e.message,
                               "last_good_epoch": trainer.state.epoch, "versions": library_versions()})
        raise
    except Exception as e:
        if distributed.is_collective_failure(e):  # a peer died or timed out: one message, not its traceback
            raise distributed.peer_failure(e, _what_was_kept(run, trainer.state.epoch, command)) from None
        raise
    except KeyboardInterrupt:
        if main and resume is None and not run.staged and trainer.state.epoch == 0:
            shutil.rmtree(run.path, ignore_errors=True)  # our own folder, with nothing trained in it yet
        raise Interrupted(f"interrupted during epoch {trainer.state.epoch + 1}", hint=_what_was_kept(run, trainer.state.epoch, command)) from None
    t_train = time.perf_counter() - t_train0

    # Test with the best weights (the checkpoint chosen on validation, never on test).
    best_path = run.weights("best")
    distributed.barrier()  # every process reads the best weights rank 0 has written
    if best_path.is_file():
        trainer.model.load_state_dict(read_weights(best_path)[0])
    test = trainer.test_scores(data.test) if len(data.test) else {}  # with --tta also the views' average
    val = trainer.evaluate(data.val) if len(data.val) else {}
    prev = run.read_summary() if resume is not None else {}
    summary = {
        "run": str(run.path),
        "status": "stopped early" if state.stopped_early else "finished",
        "model": cfg.model,
        "dataset": cfg.data,
        "params": count_params(trainer.model),
        "best_epoch": state.best_epoch,
        "epochs_run": state.epoch,
        "stopped_early": state.stopped_early,
        **({"stop_reason": state.stop_reason} if state.stop_reason else {}),
        "monitor": {"name": cfg.monitor, "best": state.best_metric},
        "test": {k: v for k, v in test.items()},
        "val": {k: v for k, v in val.items()},
        "timing": {
            "train_seconds": round(t_train + prev.get("timing", {}).get("train_seconds", 0.0), 3),
            "data_seconds": round(t_data, 3),
            "total_seconds": round(time.perf_counter() - t_start + prev.get("timing", {}).get("total_seconds", 0.0), 3),
            "resumed": resume is not None or prev.get("timing", {}).get("resumed", False),
        },
        "data": _data_summary(data),
        "device": device.type,
        **({"distributed": {"processes": world.size, "backend": world.backend, "global_batch": cfg.batch_size,
                            "batch_per_process": cfg.batch_size // world.size}} if world.active else {}),
        "threads": torch.get_num_threads(),
        "versions": library_versions(),
    }
    if main:
        run.write_summary(summary)
        _plot_curves(run, state.history, state.best_epoch, cfg, data.num_classes)
        if test:
            top5 = f"top-5 {test['top5']:.2%}, " if data.num_classes > 5 and "top5" in test else ""
            reporter.print(
                f"test accuracy {test['acc']:.2%} ({top5}loss {test['loss']:.4f}{tta_note(test)}) "
                f"with the best epoch {state.best_epoch}; training took {t_train:.1f} s"
            )
        reporter.print(f"run saved to {run.path}")
    return TrainResult(run.path, test, val, state.best_epoch, state.epoch, state.stopped_early, state.history, summary)


def _what_was_kept(run: RunDir, epochs_done: int, command: str, diverged: bool = False) -> str:
    """The truth about a stopped run's folder, for the message that reports the stop."""
    if run.staged:
        return f"the existing run {str(run._replaces)!r} was left as it was (nothing of the new run was kept)"
    if epochs_done == 0 or not run.checkpoint.is_file():
        return "no epoch finished, so no weights were saved" + ("" if diverged else "; run the same command again")
    return f"{epochs_done} finished epoch(s) are saved; continue with: cnnkit {command} --resume {run.path}"


def _data_summary(data: DatasetSplits) -> dict[str, Any]:
    """How the data was loaded, for summary.json: in memory or streamed, cache, skipped files, balance."""
    info = data.info
    out: dict[str, Any] = {"storage": "memory" if data.in_memory else "streaming"}
    for key in ("split", "cache", "class_counts", "imbalance"):
        if key in info:
            out[key] = info[key]
    out["skipped_files"] = len(info.get("skipped") or [])
    return out


def _write_skipped(run: RunDir, data: DatasetSplits) -> None:
    """List the files the data layer skipped (unreadable, not images) in the run folder, if any."""
    skipped = data.info.get("skipped") or []
    if not skipped:
        return
    from ..io import atomic_write_text

    atomic_write_json(run.path / "skipped_files.json", skipped)
    atomic_write_text(run.path / "skipped_files.txt", "".join(f"{s['path']}\t{s['reason']}\n" for s in skipped))


def _plot_curves(run: RunDir, history: list[dict[str, Any]], best_epoch: int, cfg: TrainConfig, classes: int) -> None:
    from .curves import plot_curves, train_series

    if history:
        plot_curves(history, run.curves, title=run.path.name, best_epoch=best_epoch or None, monitor=cfg.monitor,
                    **train_series(cfg.augment, cfg.label_smoothing, cfg.loss, classes))  # fmt: skip
