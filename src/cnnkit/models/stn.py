"""Spatial transformer networks (Jaderberg et al. 2015; seed 001, "Spatial Transformer Networks").

A small localisation network looks at the input and predicts the six numbers of an affine map
``theta``; ``affine_grid`` turns it into a sampling grid and ``grid_sample`` resamples the input
through it (bilinear). Everything is differentiable, so the classifier's loss alone teaches the
block to undo rotation, scale and translation before classification: no pose labels.

The last layer of the localisation network starts at zero weights and the identity bias, so at
initialisation the block passes its input through unchanged and the wrapped model trains as if it
were not there until undoing the pose starts to pay.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import Classifier
from .lenet import LeNet1, LeNet5, _check_size, _conv_out
from .registry import ModelInfo, register_model

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)  # theta rows (a, b, tx), (c, d, ty) of the identity map
MIN_SIZE = 18  # the localisation net: conv 7, pool 2, conv 5, pool 2 leaves at least 1x1


class SpatialTransformer(nn.Module):
    """Localisation net (conv7-8, pool, conv5-10, pool, FC-32, FC-6) + affine grid + bilinear sampler.

    ``padding_mode="border"`` repeats the edge pixels where the grid leaves the image: digits sit on a
    uniform background, which zeros (grey after normalisation) would not match.
    """

    def __init__(self, in_chans: int, input_size: tuple[int, int], hidden: int = 32) -> None:
        super().__init__()
        h, w = _check_size("spatial transformer", input_size, MIN_SIZE)
        self.localisation = nn.Sequential(
            nn.Conv2d(in_chans, 8, 7), nn.MaxPool2d(2), nn.ReLU(True),
            nn.Conv2d(8, 10, 5), nn.MaxPool2d(2), nn.ReLU(True),
        )  # fmt: skip
        fh, fw = (_conv_out(_conv_out(n, 7) // 2, 5) // 2 for n in (h, w))
        self.regress = nn.Sequential(
            nn.Flatten(), nn.Linear(10 * fh * fw, hidden), nn.ReLU(True), nn.Linear(hidden, 6)
        )
        nn.init.zeros_(self.regress[-1].weight)
        with torch.no_grad():
            self.regress[-1].bias.copy_(torch.tensor(IDENTITY))

    def theta(self, x: torch.Tensor) -> torch.Tensor:
        """The ``N x 2 x 3`` affine maps (output grid -> input coordinates, in [-1, 1] units)."""
        return self.regress(self.localisation(x)).view(-1, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid = F.affine_grid(self.theta(x), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class STNClassifier(Classifier):
    """``net(stn(x))``: any cnnkit classifier behind a spatial transformer."""

    def __init__(self, net: Classifier, name: str) -> None:
        super().__init__()
        c, h, w = net.info.input_size
        self.stn = SpatialTransformer(c, (h, w))
        self.net = net
        i = net.info
        self.info = ModelInfo(name, "stn", i.input_size, i.num_classes, i.mean, i.std, f"net.{i.classifier}",
                              min_size=max(i.min_size, MIN_SIZE))  # fmt: skip

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_features(self.stn(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.net.forward_head(x, pre_logits=pre_logits)


@register_model("stn", (1, 32, 32))
def stn_lenet5(
    num_classes: int = 10, in_chans: int = 1, input_size=(32, 32), act: str = "relu", pool: str = "max"
) -> STNClassifier:
    """LeNet-5 behind a spatial transformer that learns to undo rotation, scale and shift."""
    return STNClassifier(LeNet5(num_classes, in_chans, input_size, act=act, pool=pool), "stn_lenet5")


@register_model("stn", (1, 28, 28))
def stn_lenet1(
    num_classes: int = 10, in_chans: int = 1, input_size=(28, 28), act: str = "tanh", pool: str = "avg"
) -> STNClassifier:
    """LeNet-1 behind a spatial transformer."""
    return STNClassifier(LeNet1(num_classes, in_chans, input_size, act=act, pool=pool), "stn_lenet1")
