"""Loss functions of the lectures (cross-entropy, multiclass hinge (SVM), squared error) and their registry.

Adding one is one decorated function::

    @register_loss("focal", help="focal loss, gamma 2")
    def focal(label_smoothing):
        return FocalLoss(gamma=2.0)

The builder gets ``--label-smoothing`` (losses without smoothing ignore it) and returns a module (or any
callable) ``loss(scores, targets) -> scalar``, with ``scores`` N x classes and ``targets`` class indices.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..registries import LOSSES


class MulticlassHinge(nn.Module):
    """Multiclass SVM loss: mean over the batch of sum_{j != y} max(0, s_j - s_y + margin).

    Written out because torch's ``MultiMarginLoss`` divides the sum by the number of classes;
    the lectures' (Weston-Watkins / CS231n) form sums, so losses match the slides' worked examples.
    """

    def __init__(self, margin: float = 1.0) -> None:
        super().__init__()
        self.margin = margin

    def forward(self, scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        correct = scores.gather(1, target[:, None])
        margins = (scores - correct + self.margin).clamp_min(0)
        margins = margins.scatter(1, target[:, None], 0.0)  # the j == y term is excluded
        return margins.sum(1).mean()


class SquaredError(nn.Module):
    """Squared error between the scores and one-hot targets, summed over classes, mean over the batch."""

    def forward(self, scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        onehot = F.one_hot(target, scores.shape[1]).to(scores.dtype)
        return (scores - onehot).pow(2).sum(1).mean()


def register_loss(
    name: str, *, help: str | None = None
) -> Callable[[Callable[[float], nn.Module]], Callable[[float], nn.Module]]:
    """Decorator: register ``builder(label_smoothing) -> loss module`` as ``--loss name``."""
    return LOSSES.register(name, help=help)


@register_loss("cross_entropy", help="softmax cross-entropy (with --label-smoothing)")
def cross_entropy(label_smoothing: float) -> nn.Module:
    return nn.CrossEntropyLoss(label_smoothing=label_smoothing)


@register_loss("hinge", help="multiclass SVM hinge loss, margin 1, summed over the classes")
def hinge(label_smoothing: float) -> nn.Module:
    return MulticlassHinge()


@register_loss("squared_error", help="squared error to one-hot targets, summed over the classes")
def squared_error(label_smoothing: float) -> nn.Module:
    return SquaredError()


def build_loss(name: str, label_smoothing: float = 0.0) -> nn.Module:
    """A registered loss module by name: ``cross_entropy``, ``hinge``, ``squared_error``, ..."""
    loss = LOSSES.get(name).fn(label_smoothing)  # ConfigError (did you mean ...) for an unknown name
    if not callable(loss):
        raise TypeError(f"loss {name!r} returned {type(loss).__name__}, not a callable loss(scores, targets)")
    return loss
