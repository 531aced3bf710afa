"""DenseNet-BC (Huang et al. 2017).

Inside a dense block every layer receives the concatenation of all earlier feature maps and adds
``growth_rate`` new ones, so features are reused instead of re-learnt: DenseNet-121 matches ResNet-50's
accuracy with a third of the parameters. Transitions (BN-ReLU-1x1 conv halving the channels, 2x2 average
pool) sit between blocks. Names follow torchvision (``features.denseblock1.denselayer1.conv1`` ...), so its
state dicts load as they are. Below 64 px (or ``small_input=True``) the 7x7 stride-2 stem and its
max-pool become one 3x3 stride-1 convolution.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .base import Classifier
from .layers import DenseBlock, Transition, default_norm, is_small
from .registry import IMAGENET_MEAN, IMAGENET_STD, ModelInfo, register_model


class DenseNet(Classifier):
    """``features`` (stem, dense blocks and transitions, final BN), then ReLU, global pool, ``classifier``."""

    def __init__(self, growth_rate: int, block_config: Sequence[int], num_init_features: int, num_classes: int,
                 in_chans: int = 3, small: bool = False, bn_size: int = 4, drop_rate: float = 0.0) -> None:
        super().__init__()
        if small:
            stem = [("conv0", nn.Conv2d(in_chans, num_init_features, 3, 1, 1, bias=False)),
                    ("norm0", nn.BatchNorm2d(num_init_features)), ("relu0", nn.ReLU(inplace=True))]
        else:
            stem = [("conv0", nn.Conv2d(in_chans, num_init_features, 7, 2, 3, bias=False)),
                    ("norm0", nn.BatchNorm2d(num_init_features)), ("relu0", nn.ReLU(inplace=True)),
                    ("pool0", nn.MaxPool2d(3, 2, 1))]
        self.features = nn.Sequential(OrderedDict(stem))
        c = num_init_features
        for i, n in enumerate(block_config):
            block = DenseBlock(n, c, growth_rate, bn_size, drop_rate)
            self.features.add_module(f"denseblock{i + 1}", block)
            c = block.out_channels
            if i != len(block_config) - 1:
                self.features.add_module(f"transition{i + 1}", Transition(c, c // 2))  # compression 0.5
                c //= 2
        self.features.add_module("norm5", nn.BatchNorm2d(c))
        self.num_features = c
        self.classifier = nn.Linear(c, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.features(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(F.adaptive_avg_pool2d(x, (1, 1)), 1)
        return x if pre_logits else self.classifier(x)


def _densenet(name: str, growth: int, blocks: tuple[int, ...], init: int, num_classes: int, in_chans: int,
              input_size: tuple[int, int], drop_rate: float, small_input: bool | None) -> DenseNet:
    small = is_small(input_size, small_input)
    model = DenseNet(growth, blocks, init, num_classes, in_chans, small, drop_rate=drop_rate)
    mean, std = default_norm(in_chans, IMAGENET_MEAN, IMAGENET_STD)
    # Three 2x2 average-pool transitions need 8 px at the stride-1 stem, 29 px behind the stride-4 one.
    model.info = ModelInfo(name, "densenet", (in_chans, *input_size), num_classes, mean, std, "classifier",
                           min_size=8 if small else 29)
    return model


@register_model("densenet", (3, 224, 224))
def densenet121(num_classes: int = 1000, in_chans: int = 3, input_size=(224, 224), drop_rate: float = 0.0,
                small_input: bool | None = None) -> DenseNet:
    """DenseNet-121: growth 32, blocks (6, 12, 24, 16), 8.0M parameters."""
    return _densenet("densenet121", 32, (6, 12, 24, 16), 64, num_classes, in_chans, input_size, drop_rate,
                     small_input)


@register_model("densenet", (3, 224, 224))
def densenet161(num_classes: int = 1000, in_chans: int = 3, input_size=(224, 224), drop_rate: float = 0.0,
                small_input: bool | None = None) -> DenseNet:
    """DenseNet-161: growth 48, blocks (6, 12, 36, 24), 28.7M parameters."""
    return _densenet("densenet161", 48, (6, 12, 36, 24), 96, num_classes, in_chans, input_size, drop_rate,
                     small_input)


@register_model("densenet", (3, 224, 224))
def densenet169(num_classes: int = 1000, in_chans: int = 3, input_size=(224, 224), drop_rate: float = 0.0,
                small_input: bool | None = None) -> DenseNet:
    """DenseNet-169: growth 32, blocks (6, 12, 32, 32), 14.1M parameters."""
    return _densenet("densenet169", 32, (6, 12, 32, 32), 64, num_classes, in_chans, input_size, drop_rate,
                     small_input)


@register_model("densenet", (3, 224, 224))
def densenet201(num_classes: int = 1000, in_chans: int = 3, input_size=(224, 224), drop_rate: float = 0.0,
                small_input: bool | None = None) -> DenseNet:
    """DenseNet-201: growth 32, blocks (6, 12, 48, 32), 20.0M parameters."""
    return _densenet("densenet201", 32, (6, 12, 48, 32), 64, num_classes, in_chans, input_size, drop_rate,
                     small_input)
