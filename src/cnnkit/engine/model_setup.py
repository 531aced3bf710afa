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
from ..models import create_model
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
        built = model_fn(cfg, data)
        setup = built if isinstance(built, ModelSetup) else ModelSetup(built)
    else:
        c, h, w = data.image_shape
        model = create_model(
            cfg.model, num_classes=data.num_classes, in_chans=c, input_size=(h, w), **cfg.model_args
        )
        setup = ModelSetup(init_from_data(model, data, cfg.seed, new_run=new_run))
    if setup.mean is not None and setup.std is not None:
        data.mean, data.std = tuple(setup.mean), tuple(setup.std)
    return setup
