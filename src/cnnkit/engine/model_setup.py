"""The model a run starts from: built once for the data, with how it wants to be trained.

``cnnkit train`` and ``cnnkit lr-find`` both call :func:`build_model`, so the range test sweeps the very
network (same seed, same initial weights, same data-dependent init) that training would start from.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..config import TrainConfig
from ..data import DatasetSplits
from ..errors import CheckpointError, ConfigError
from ..models import create_model
from ..models.weights import load_weights
from .data_init import init_from_data


@dataclass
class ModelSetup:
    """What a ``model_fn`` may return instead of a bare model: the model plus how it wants to be trained.

    ``lr_mults``: learning-rate multipliers by parameter-name prefix (e.g. a pretrained backbone at
    0.1x); ``mean``/``std``: the input normalisation the weights expect, replacing the data's (the
    loaders and the weights' sidecar use it).
    """

    model: nn.Module
    lr_mults: dict[str, float] | None = None
    mean: Sequence[float] | None = None
    std: Sequence[float] | None = None


def build_model(
    cfg: TrainConfig,
    data: DatasetSplits,
    model_fn: Callable[[TrainConfig, DatasetSplits], nn.Module | ModelSetup] | None = None,
    new_run: bool = True,
) -> ModelSetup:
    """``model_fn(cfg, data)``'s model, else the registry's ``cfg.model`` for ``data``'s channels, classes and size.

    Seeded with ``cfg.seed`` (same seed, same initial weights). A new run's registry model gets its
    data-dependent init (airbench's whitening) here, once; a resumed one (``new_run=False``) loads weights.
    A :class:`ModelSetup`'s own ``mean``/``std`` replace ``data``'s, for the loaders and the weights' sidecar.
    """
    torch.manual_seed(cfg.seed)
    if model_fn is not None:
        if cfg.weights:
            raise ConfigError(f"weights: {cfg.weights} starts a plain training run; this run builds its own model",
                              hint="remove `weights` from the options (cnnkit finetune takes its own --weights)")
        built = model_fn(cfg, data)
        setup = built if isinstance(built, ModelSetup) else ModelSetup(built)
    else:
        c, h, w = data.image_shape
        model = create_model(
            cfg.model, num_classes=data.num_classes, in_chans=c, input_size=(h, w), **cfg.model_args
        )
        if cfg.weights and new_run:  # the file's weights replace the initialisation, data-dependent or not
            setup = ModelSetup(_start_from(model, cfg.weights, data.num_classes))
        else:  # a resumed run (new_run=False) loads its checkpoint instead
            setup = ModelSetup(init_from_data(model, data, cfg.seed, new_run=new_run))
    if setup.mean is not None and setup.std is not None:
        data.mean, data.std = tuple(setup.mean), tuple(setup.std)
    return setup


def _start_from(model: nn.Module, path: str, num_classes: int) -> nn.Module:
    """``model`` with the weights of ``path`` (every key and shape must match: a new start, not a transfer)."""
    try:
        load_weights(model, path)
    except CheckpointError as e:
        if e.classifier_only:  # same network, another class count: what finetune is for
            raise CheckpointError(f"--weights {path}: {e.message}",
                                  hint=f"this data has {num_classes} classes; to reuse the other layers on it, run "
                                  f"`cnnkit finetune --weights {path}` with the same --model") from None  # fmt: skip
        raise CheckpointError(f"--weights {path}: {e.message}", hint=e.hint) from None
    return model
