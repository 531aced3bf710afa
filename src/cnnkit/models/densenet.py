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
from .layers import default_norm, is_small
from .registry import IMAGENET_MEAN, IMAGENET_STD, ModelInfo, Variant, register_variants


class DenseLayer(nn.Module):
    """DenseNet-BC layer: BN-ReLU-1x1 conv (``bn_size * growth`` channels) then BN-ReLU-3x3 conv
    (``growth`` channels). Its input is the concatenation of every earlier feature map in the block."""

    def __init__(self, in_ch: int, growth_rate: int, bn_size: int = 4, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(in_ch)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_ch, bn_size * growth_rate, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, 3, padding=1, bias=False)
        self.drop_rate = float(drop_rate)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        out = self.conv1(self.relu1(self.norm1(torch.cat(features, 1))))
        out = self.conv2(self.relu2(self.norm2(out)))
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        return out


class DenseBlock(nn.ModuleDict):
    """``num_layers`` dense layers; each adds ``growth_rate`` channels to the running concatenation."""

    def __init__(self, num_layers: int, in_ch: int, growth_rate: int, bn_size: int = 4, drop_rate: float = 0.0):
        super().__init__()
        for i in range(num_layers):
            self.add_module(f"denselayer{i + 1}", DenseLayer(in_ch + i * growth_rate, growth_rate, bn_size, drop_rate))
        self.out_channels = in_ch + num_layers * growth_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    """Between dense blocks: BN-ReLU-1x1 conv (compresses channels) then 2x2 average pooling."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(in_ch)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(in_ch, out_ch, 1, bias=False)
        self.pool = nn.AvgPool2d(2, 2)


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


def _densenet(name: str, growth: int, blocks: tuple[int, ...], init: int, num_classes: int = 1000, in_chans: int = 3,
              input_size=(224, 224), drop_rate: float = 0.0, small_input: bool | None = None) -> DenseNet:
    """DenseNet ``name``: ``growth`` channels per layer, ``blocks`` layers per dense block, ``init`` stem channels."""
    small = is_small(input_size, small_input)
    model = DenseNet(growth, blocks, init, num_classes, in_chans, small, drop_rate=drop_rate)
    mean, std = default_norm(in_chans, IMAGENET_MEAN, IMAGENET_STD)
    # Three 2x2 average-pool transitions need 8 px at the stride-1 stem, 29 px behind the stride-4 one.
    model.info = ModelInfo(name, "densenet", (in_chans, *input_size), num_classes, mean, std, "classifier",
                           min_size=8 if small else 29)
    return model


register_variants("densenet", (3, 224, 224), _densenet, {
    "densenet121": Variant("DenseNet-121: growth 32, blocks (6, 12, 24, 16), 8.0M parameters.",
                           {"growth": 32, "blocks": (6, 12, 24, 16), "init": 64}),
    "densenet161": Variant("DenseNet-161: growth 48, blocks (6, 12, 36, 24), 28.7M parameters.",
                           {"growth": 48, "blocks": (6, 12, 36, 24), "init": 96}),
    "densenet169": Variant("DenseNet-169: growth 32, blocks (6, 12, 32, 32), 14.1M parameters.",
                           {"growth": 32, "blocks": (6, 12, 32, 32), "init": 64}),
    "densenet201": Variant("DenseNet-201: growth 32, blocks (6, 12, 48, 32), 20.0M parameters.",
                           {"growth": 32, "blocks": (6, 12, 48, 32), "init": 64}),
})  # fmt: skip
