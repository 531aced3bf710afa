"""AlexNet (Krizhevsky et al. 2012) and ZFNet (Zeiler and Fergus 2013).

``alexnet`` at ImageNet size is torchvision's layout (64-192-384-256-256 channels, the "one weird
trick" single-GPU version), so its state dicts load as they are. ``alexnet(original=True)`` is the
paper's network: 96-256-384-384-256 channels, local response normalisation after the first two
convolutions, and overlapping 3x3 stride-2 max pooling (``split_gpus=True`` adds the two-GPU grouped
convolutions of layers 2, 4 and 5). ``zfnet`` replaces the 11x11 stride-4 first layer with 7x7 stride 2
and strides the second layer, which kept more detail in the first feature maps.

Below 64 px (or with ``small_input=True``) the first convolution becomes 5x5 (AlexNet) or 3x3 (ZFNet)
at stride 1, and the head pools to 2x2 with 1024-wide hidden layers, so the nets train on 28-32 px
digits or CIFAR images.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ModelError
from .base import Classifier
from .layers import default_norm, is_small
from .registry import IMAGENET_MEAN, IMAGENET_STD, ModelInfo, register_model

# No batch norm and PyTorch's default init: activations halve at every layer, and SGD at 0.05 leaves
# AlexNet at 31% on digits after 10 epochs and ZFNet at chance after 3. Adam at 1e-3: AlexNet 88% after
# 10 epochs, ZFNet 58% after 6 with its loss still falling.
RECIPE = {"optimizer": "adam", "lr": 1e-3}


def lrn(size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0) -> nn.LocalResponseNorm:
    """Local response normalisation across channels with AlexNet's constants (n=5, alpha=1e-4, beta=0.75, k=2)."""
    return nn.LocalResponseNorm(size, alpha=alpha, beta=beta, k=k)


class AlexNet(Classifier):
    """Five convolutions (``features``), adaptive average pool, three fully connected layers (``classifier``)."""

    def __init__(self, features: nn.Sequential, out_ch: int, pool_size: int, fc_width: int, num_classes: int,
                 dropout: float = 0.5) -> None:
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((pool_size, pool_size))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout), nn.Linear(out_ch * pool_size * pool_size, fc_width), nn.ReLU(inplace=True),
            nn.Dropout(p=dropout), nn.Linear(fc_width, fc_width), nn.ReLU(inplace=True),
            nn.Linear(fc_width, num_classes),
        )  # fmt: skip

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)
        return self.classifier[:-1](x) if pre_logits else self.classifier(x)


def _conv(in_ch: int, out_ch: int, k: int, s: int = 1, p: int = 0, groups: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(in_ch, out_ch, k, s, p, groups=groups), nn.ReLU(inplace=True)]


def _finish(model: AlexNet, name: str, in_chans: int, input_size: tuple[int, int], num_classes: int,
            min_size: int) -> AlexNet:
    mean, std = default_norm(in_chans, IMAGENET_MEAN, IMAGENET_STD)
    model.info = ModelInfo(name, "alexnet", (in_chans, *input_size), num_classes, mean, std, "classifier.6",
                           min_size=min_size)
    return model


@register_model("alexnet", (3, 224, 224), recipe=RECIPE)
def alexnet(num_classes: int = 1000, in_chans: int = 3, input_size=(224, 224), original: bool = False,
            split_gpus: bool = False, dropout: float = 0.5, small_input: bool | None = None) -> AlexNet:
    """AlexNet: torchvision layout (default) or the 2012 paper's (``original=True``: LRN, 96-256-384-384-256)."""
    small = is_small(input_size, small_input)
    g = 2 if split_gpus else 1
    if split_gpus and not original:
        raise ModelError("split_gpus needs original=True (torchvision's AlexNet has no grouped convolutions)")
    # Small images: a 5x5 stride-1 first layer instead of 11x11 stride 4, which would leave nothing to pool.
    c1 = dict(k=5, s=1, p=2) if small else dict(k=11, s=4, p=2)
    if original:
        widths = (96, 256, 384, 384, 256)
        layers = [*_conv(in_chans, 96, **c1), lrn(), nn.MaxPool2d(3, 2),
                  *_conv(96, 256, 5, p=2, groups=g), lrn(), nn.MaxPool2d(3, 2),
                  *_conv(256, 384, 3, p=1), *_conv(384, 384, 3, p=1, groups=g),
                  *_conv(384, 256, 3, p=1, groups=g), nn.MaxPool2d(3, 2)]  # fmt: skip
    else:
        widths = (64, 192, 384, 256, 256)
        layers = [*_conv(in_chans, 64, **c1), nn.MaxPool2d(3, 2),
                  *_conv(64, 192, 5, p=2), nn.MaxPool2d(3, 2),
                  *_conv(192, 384, 3, p=1), *_conv(384, 256, 3, p=1), *_conv(256, 256, 3, p=1),
                  nn.MaxPool2d(3, 2)]  # fmt: skip
    pool, fc = (2, 1024) if small else (6, 4096)
    model = AlexNet(nn.Sequential(*layers), widths[-1], pool, fc, num_classes, dropout)
    return _finish(model, "alexnet", in_chans, input_size, num_classes, 15 if small else 63)


@register_model("alexnet", (3, 224, 224), recipe=RECIPE)
def zfnet(num_classes: int = 1000, in_chans: int = 3, input_size=(224, 224), dropout: float = 0.5,
          small_input: bool | None = None) -> AlexNet:
    """ZFNet: AlexNet with a 7x7 stride-2 first layer and a strided second layer (Zeiler and Fergus 2013)."""
    small = is_small(input_size, small_input)
    c1 = dict(k=3, s=1, p=1) if small else dict(k=7, s=2, p=1)
    s2, p2 = (1, 2) if small else (2, 0)
    layers = [*_conv(in_chans, 96, **c1), lrn(), nn.MaxPool2d(3, 2, padding=1),
              *_conv(96, 256, 5, s2, p2), lrn(), nn.MaxPool2d(3, 2, padding=1),
              *_conv(256, 384, 3, p=1), *_conv(384, 384, 3, p=1), *_conv(384, 256, 3, p=1),
              nn.MaxPool2d(3, 2)]  # fmt: skip
    pool, fc = (2, 1024) if small else (6, 4096)
    model = AlexNet(nn.Sequential(*layers), 256, pool, fc, num_classes, dropout)
    return _finish(model, "zfnet", in_chans, input_size, num_classes, 9 if small else 53)
