"""What every cnnkit model offers: ``forward_features``, ``forward_head``, ``reset_classifier``."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ModelError
from .registry import ModelInfo


class Classifier(nn.Module):
    """Base class of cnnkit models.

    Subclasses implement :meth:`forward_features` (image -> feature map or vector) and
    :meth:`forward_head` (features -> logits) and set ``self.info``. The final layer lives at the
    attribute path ``info.classifier`` so :meth:`reset_classifier` can swap it for transfer learning.
    """

    info: ModelInfo

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.get_submodule(self.info.classifier)

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the final layer by a freshly initialised one with ``num_classes`` outputs."""
        reset_classifier(self, num_classes)


def reset_classifier(model: nn.Module, num_classes: int) -> None:
    """Swap the layer at ``model.info.classifier`` for a new one with ``num_classes`` outputs.

    Works for ``nn.Linear`` and ``nn.Conv2d`` heads (SqueezeNet's classifier is a 1x1 conv) and for
    models that provide their own ``_make_classifier(num_classes)``.
    """
    info: ModelInfo = model.info
    path = info.classifier
    parent_path, _, attr = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    old = getattr(parent, attr)
    maker = getattr(model, "_make_classifier", None)
    if maker is not None:
        new = maker(num_classes)
    elif isinstance(old, nn.Linear):
        new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
    elif isinstance(old, nn.Conv2d):
        new = nn.Conv2d(old.in_channels, num_classes, old.kernel_size, old.stride, old.padding)
    else:
        raise ModelError(f"cannot reset classifier of type {type(old).__name__} at {path!r}")
    p = next(old.parameters(), None)
    if p is not None:
        new = new.to(device=p.device, dtype=p.dtype)
    setattr(parent, attr, new)
    info.num_classes = num_classes
