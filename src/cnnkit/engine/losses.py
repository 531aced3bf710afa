"""Loss functions of the lectures: cross-entropy, multiclass hinge (SVM) and squared error."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, suggest


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


def build_loss(name: str, label_smoothing: float = 0.0) -> nn.Module:
    """A loss module by name: ``cross_entropy``, ``hinge`` or ``squared_error``."""
    if name == "cross_entropy":
        return nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    if name == "hinge":
        return MulticlassHinge()
    if name == "squared_error":
        return SquaredError()
    raise ConfigError(f"unknown loss {name!r}", hint=suggest(name, ["cross_entropy", "hinge", "squared_error"]))
