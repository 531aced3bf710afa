"""Fully connected classifiers: softmax regression (``linear``) and the MLP (LeNet-300-100)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .base import Classifier
from .layers import make_activation
from .registry import ModelInfo, register_model

_GRAY = ((0.5,), (0.5,))


class MLP(Classifier):
    """Image flattened to a vector, hidden fully connected layers, a linear output layer.

    With no hidden layers this is the lectures' linear classifier (softmax regression).
    """

    def __init__(
        self,
        num_classes: int,
        in_chans: int,
        input_size: tuple[int, int],
        hidden: Sequence[int] = (),
        act: str = "relu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        n_in = in_chans * input_size[0] * input_size[1]
        layers: list[nn.Module] = [nn.Flatten()]
        for h in hidden:
            layers += [nn.Linear(n_in, h), make_activation(act)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            n_in = h
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(n_in, num_classes)
        mean, std = _GRAY if in_chans == 1 else ((0.5,) * in_chans, (0.5,) * in_chans)
        self.info = ModelInfo("mlp", "linear", (in_chans, *input_size), num_classes, mean, std, "fc")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


@register_model("linear", (1, 28, 28))
def linear(num_classes: int = 10, in_chans: int = 1, input_size=(28, 28)) -> MLP:
    """Linear classifier (softmax regression): one fully connected layer on the pixels."""
    return MLP(num_classes, in_chans, input_size, hidden=())


@register_model("linear", (1, 28, 28))
def mlp(
    num_classes: int = 10,
    in_chans: int = 1,
    input_size=(28, 28),
    hidden: Sequence[int] = (300,),
    act: str = "relu",
    dropout: float = 0.0,
) -> MLP:
    """Multi-layer perceptron; ``hidden`` lists the hidden layer widths (default one of 300)."""
    return MLP(num_classes, in_chans, input_size, hidden=tuple(int(h) for h in hidden), act=act, dropout=dropout)


@register_model("linear", (1, 28, 28))
def lenet300(num_classes: int = 10, in_chans: int = 1, input_size=(28, 28), act: str = "relu") -> MLP:
    """LeNet-300-100: two hidden fully connected layers of 300 and 100 units."""
    return MLP(num_classes, in_chans, input_size, hidden=(300, 100), act=act)
