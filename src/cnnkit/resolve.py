"""The one answer to "is this argument a run folder or a model name?" (``features``, ``summary``,
``style-transfer`` and the Python functions behind them all take either).

A path is a run folder: an existing folder, a :class:`~pathlib.Path`, or text with a path separator or
a leading dot (``runs/demo``, ``./x``, ``..``). Anything else is a model name (``lenet5``,
``torchvision:resnet18``), which the model registry checks with its own "did you mean" message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .errors import CheckpointError
from .run import LoadedRun, load_run


def names_a_run(target: Any) -> bool:
    """Whether ``target`` stands for a run folder rather than a model name (nothing is read)."""
    if isinstance(target, Path):
        return True
    text = str(target)
    if text.startswith(("torchvision:", "timm:")):
        return False
    return Path(text).is_dir() or "/" in text or "\\" in text or text.startswith(".")


def run_or_model(target: Any, device: str | torch.device = "cpu") -> LoadedRun | str:
    """A run folder loaded (best weights, on ``device``), or the model name ``target`` unchanged.

    A path that does not exist fails here with one message for every command, instead of being
    looked up as a model name ("unknown model 'runs/demo'").
    """
    if isinstance(target, LoadedRun):
        return target
    if not names_a_run(target):
        return str(target)
    if not Path(target).exists():
        raise CheckpointError(f"{str(target)!r} does not exist: it is neither a run folder nor a model name",
                              hint="pass a folder `cnnkit train` made, or a name from `cnnkit models`")  # fmt: skip
    return load_run(target, device=device)
