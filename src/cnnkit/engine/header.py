"""The lines that open a training run: what it trains with, and where each choice came from.

A reader of the log should never wonder why a run used Adam or no augmentation: each setting is
followed by its origin, ``[flag]`` (given on the command line or as a keyword), ``[FILE]`` (a
``--config`` file), ``[MODEL's recipe]`` or ``[default]``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..config import TrainConfig
from ..errors import ConfigError

MAX_EPOCHS_ENV = "CNNKIT_MAX_EPOCHS"


MAX_BATCHES_ENV = "CNNKIT_MAX_BATCHES"


def _env_count(name: str) -> int | None:
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"{name}={text!r} must be a whole number >= 1", hint=f"unset it, or e.g. {name}=1")
    return int(text)


def epochs_cap() -> int | None:
    """``$CNNKIT_MAX_EPOCHS`` as a whole number >= 1, or None when unset (tests and CI shorten runs with it)."""
    return _env_count(MAX_EPOCHS_ENV)


def batches_cap() -> int | None:
    """``$CNNKIT_MAX_BATCHES``: train at most this many batches per epoch (None when unset; for smoke tests)."""
    return _env_count(MAX_BATCHES_ENV)


def base_dataset(data: str) -> str:
    """The dataset a ``subset:`` spec filters (``subset:digits?classes=0,1`` -> ``digits``), else ``data``.

    Its size and augmentation defaults hold for any subset of it (the subset source itself lives in
    cnnkit.transfer, which the engine does not import).
    """
    while data.startswith("subset:"):
        data = data[len("subset:") :].partition("?")[0]
    return data


def origins(
    model: str,
    dataset: str,
    given: Iterable[str],
    from_file: Iterable[str],
    config_path: str | None,
    recipe_used: dict[str, Any],
) -> dict[str, str]:
    """Where each option came from: ``flag``, the config file's name, the model's recipe, or ``default``."""
    out: dict[str, str] = {}
    given, from_file = set(given), set(from_file)
    for key in ("optimizer", "lr", "warmup_epochs", "scheduler", "epochs", "batch_size", "augment", "momentum",
                "weight_decay", "loss", "label_smoothing"):  # fmt: skip
        if key in given:
            out[key] = "flag"
        elif key in from_file:
            out[key] = os.path.basename(str(config_path)) if config_path else "config"
        elif key in recipe_used:
            out[key] = f"{model}'s recipe"
        elif key == "augment":
            out[key] = f"default for {dataset.split('?')[0]}"
        else:
            out[key] = "default"
    return out


def _origin(keys: tuple[str, ...], where: dict[str, str]) -> str:
    """One origin for a group of options: the one they share, else each named (``lr: flag``)."""
    found = [where.get(k, "default") for k in keys]
    if len(set(found)) == 1:
        return found[0]
    pairs = [(k.replace("_", "-"), w) for k, w in zip(keys, found, strict=True)]
    if len(keys) <= 2:
        return ", ".join(f"{k}: {w}" for k, w in pairs)
    by_origin: dict[str, list[str]] = {}
    for k, w in pairs:
        if w != "default":
            by_origin.setdefault(w, []).append(k)
    named = "; ".join(f"{', '.join(ks)}: {w}" for w, ks in by_origin.items())
    return named + ("; others default" if "default" in found else "")


def setup_lines(cfg: TrainConfig, where: dict[str, str], has_recipe: bool, auto_chosen: bool = False) -> list[str]:
    """Four lines: optimiser, schedule, loss, augmentation, each with its origin in brackets.

    ``auto_chosen``: ``cfg.augment`` was chosen from the training images just now; its reason follows.
    """
    if cfg.lr_reason:  # --lr find chose the rate (now, or in the run this config replays)
        where = {**where, "lr": "lr-find"}
    if cfg.epochs_reason:  # --time-budget fixed the epochs (now, or in the run this config replays)
        where = {**where, "epochs": "--time-budget"}
    opt = f"{cfg.optimizer} lr {cfg.lr:g}"
    if cfg.optimizer == "sgd":
        opt += f", {'Nesterov ' if cfg.nesterov else ''}momentum {cfg.momentum:g}"
    opt += f", weight decay {cfg.weight_decay:g}" if cfg.weight_decay else ", no weight decay"
    warm = f"{cfg.warmup_epochs:g} warmup epoch(s)" if cfg.warmup_epochs else "no warmup"
    sched = f"{cfg.scheduler} over {cfg.epochs} epoch(s) of batch {cfg.batch_size}, {warm}"
    loss = cfg.loss.replace("_", "-") + (f", label smoothing {cfg.label_smoothing:g}" if cfg.label_smoothing else "")
    aug = cfg.augment or "none"
    width = max(len(opt), len(sched), len(loss), len(aug))
    lines = [
        f"  optimiser     {opt:<{width}}  [{_origin(('optimizer', 'lr'), where)}]",
        *([f"                ({cfg.lr_reason.partition(': ')[2]})"] if cfg.lr_reason else []),
        f"  schedule      {sched:<{width}}  [{_origin(('scheduler', 'epochs', 'batch_size', 'warmup_epochs'), where)}]",
        *([f"                ({cfg.epochs_reason})"] if cfg.epochs_reason else []),
        f"  loss          {loss:<{width}}  [{_origin(('loss', 'label_smoothing'), where)}]",
        f"  augmentation  {aug:<{width}}  [{'auto: chosen from the training images' if auto_chosen else where.get('augment', 'default')}]",
    ]
    if auto_chosen and cfg.augment_reason:
        lines.append(f"                ({cfg.augment_reason.partition(f'{cfg.augment}: ')[2]})")
    if not has_recipe:
        lines.append(f"  ({cfg.model} has no training recipe: options not given use cnnkit's defaults)")
    return lines


def resume_lines(run_path: Any, done: int, cfg: TrainConfig, before: int | None, start_lr: float) -> list[str]:
    """What a resumed run prints first: where it goes on, and (``--epochs`` changed: ``before`` was the
    length) that the schedule now spans the new length, so the rate may jump back up."""
    lines = [f"resuming {run_path}: {done} epoch(s) done, training epochs {done + 1}-{cfg.epochs}"]
    if before is not None and before != cfg.epochs:
        lines.append(f"  (the {cfg.scheduler} schedule is re-planned over {cfg.epochs} epochs instead of {before}: "
                     f"epoch {done + 1} starts at lr {start_lr:.3g})")  # fmt: skip
    return lines


def capped_resume(overrides: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """``--resume --epochs N`` under ``$CNNKIT_MAX_EPOCHS``: at most that many epochs more than config.yaml's."""
    cap, before = epochs_cap(), int(base.get("epochs", 0))
    if cap is not None and int(overrides.get("epochs", 0)) > before + cap:
        return {**overrides, "epochs": before + cap}
    return overrides


def intro_lines(
    config: Any, file_opts: dict[str, Any], overrides: dict[str, Any], raw: TrainConfig, cfg: TrainConfig,
    recipe: dict[str, Any], auto_chosen: bool = False,
) -> list[str]:  # fmt: skip
    """The header of a new run: :func:`setup_lines` with each option's origin, and the epochs cap if any.

    ``config`` is what :func:`~cnnkit.engine.train` was given (a YAML path, a mapping or a
    :class:`TrainConfig`), ``file_opts`` its options, ``overrides`` the keywords (the CLI's flags),
    ``raw``/``cfg`` the config before and after :func:`~cnnkit.engine.train.resolve_config`.
    """
    recipe_used = {k: v for k, v in recipe.items() if getattr(raw, k) is None and getattr(cfg, k) == v}
    given = set(overrides)
    if isinstance(config, TrainConfig):  # a command built on train (finetune): its set fields count as given
        default = TrainConfig()
        given |= {k for k, v in file_opts.items() if v != getattr(default, k)}
        file_opts = {}
    path = str(config) if isinstance(config, (str, Path)) else None
    where = origins(cfg.model, base_dataset(cfg.data), given, file_opts, path, recipe_used)
    lines = setup_lines(cfg, where, bool(recipe), auto_chosen)
    asked = raw.with_defaults(recipe).epochs
    if cfg.epochs < asked and raw.time_budget is None:
        lines.append(
            f"epochs capped at {cfg.epochs} (of {asked}) by ${MAX_EPOCHS_ENV}; config.yaml records it"
        )
    if (nb := batches_cap()) is not None:
        lines.append(
            f"at most {nb} batch(es) per epoch, by ${MAX_BATCHES_ENV} (a smoke test, not a real run)"
        )
    return lines
