"""VGG (Simonyan and Zisserman 2014): stacks of 3x3 convolutions, 2x2 max pooling, three FC layers.

Two 3x3 convolutions see a 5x5 window and three see 7x7, with fewer parameters and more
non-linearities than one large filter. At ImageNet size the layout is torchvision's (``features``,
``avgpool`` to 7x7, ``classifier`` of 4096-4096-classes), so its state dicts load as they are.
Below 64 px (or ``small_input=True``) the CIFAR variant is built: the same convolutions, pooling
with ``ceil_mode`` so five poolings still fit 28 px, global average pooling and one FC layer
(``classifier.0``) instead of the 120M-parameter head.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import Classifier
from .layers import default_norm, is_small, make_pool
from .registry import IMAGENET_MEAN, IMAGENET_STD, ModelInfo, Variant, register_variants

# Batch-norm VGG at the default lr (0.05) blows up in its first steps (loss ~10 on digits, stuck near
# chance after 6 epochs); one epoch of linear warmup lets it reach 99%. Measured in tests/engine.
BN_RECIPE = {"warmup_epochs": 1.0}
# Without batch norm the signal fades through the plain stack and SGD at 0.05 barely moves it (40% on
# digits after 3 epochs); Adam's per-parameter step at 3e-4 reaches 95% in 6.
PLAIN_RECIPE = {"optimizer": "adam", "lr": 3e-4}

# Configurations A, B, D, E of the paper: output channels of each 3x3 conv, "M" = 2x2 pooling.
CFGS: dict[str, list[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"],
}  # fmt: skip


def make_layers(cfg: list[int | str], in_chans: int, batch_norm: bool, pool: str = "max",
                ceil_mode: bool = False) -> nn.Sequential:
    """The convolutional part: conv3x3 (+ BN) + ReLU per number, a pooling layer per "M"."""
    layers: list[nn.Module] = []
    c = in_chans
    for v in cfg:
        if v == "M":
            layers.append(make_pool(pool, 2, 2, ceil_mode=ceil_mode))
            continue
        layers.append(nn.Conv2d(c, int(v), 3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(int(v)))
        layers.append(nn.ReLU(inplace=True))
        c = int(v)
    return nn.Sequential(*layers)


class VGG(Classifier):
    """VGG network: ``features`` (conv stacks), ``avgpool``, ``classifier``."""

    def __init__(self, features: nn.Sequential, num_classes: int, small: bool, dropout: float = 0.5) -> None:
        super().__init__()
        self.features = features
        if small:
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.classifier = nn.Sequential(nn.Linear(512, num_classes))
        else:
            self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
            self.classifier = nn.Sequential(
                nn.Linear(512 * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(p=dropout),
                nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(p=dropout),
                nn.Linear(4096, num_classes),
            )  # fmt: skip
        # torchvision's initialisation (He normal for convs, N(0, 0.01) for FC layers).
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)
        return self.classifier[:-1](x) if pre_logits else self.classifier(x)


def _vgg(name: str, num_classes: int = 1000, in_chans: int = 3, input_size=(224, 224), dropout: float = 0.5,
         pool: str = "max", small_input: bool | None = None) -> VGG:
    """VGG ``name`` (``vgg16``, or ``vgg16_bn`` with batch normalisation after each convolution)."""
    base, batch_norm = name.removesuffix("_bn"), name.endswith("_bn")
    small = is_small(input_size, small_input)
    features = make_layers(CFGS[base], in_chans, batch_norm, pool, ceil_mode=small)
    model = VGG(features, num_classes, small, dropout)
    mean, std = default_norm(in_chans, IMAGENET_MEAN, IMAGENET_STD)
    # Five 2x2 poolings: 32 px floor to 1x1 at ImageNet layout; ceil_mode keeps even 1 px alive.
    model.info = ModelInfo(name, "vgg", (in_chans, *input_size), num_classes, mean, std,
                           "classifier.0" if small else "classifier.6", min_size=1 if small else 32)
    return model


register_variants("vgg", (3, 224, 224), _vgg, {
    "vgg11": Variant("VGG-11 (configuration A): 8 conv + 3 FC layers.", recipe=PLAIN_RECIPE),
    "vgg11_bn": Variant("VGG-11 with batch normalisation after each convolution.", recipe=BN_RECIPE),
    "vgg13": Variant("VGG-13 (configuration B): 10 conv + 3 FC layers.", recipe=PLAIN_RECIPE),
    "vgg13_bn": Variant("VGG-13 with batch normalisation after each convolution.", recipe=BN_RECIPE),
    "vgg16": Variant("VGG-16 (configuration D): 13 conv + 3 FC layers, 138M parameters.", recipe=PLAIN_RECIPE),
    "vgg16_bn": Variant("VGG-16 with batch normalisation after each convolution.", recipe=BN_RECIPE),
    "vgg19": Variant("VGG-19 (configuration E): 16 conv + 3 FC layers.", recipe=PLAIN_RECIPE),
    "vgg19_bn": Variant("VGG-19 with batch normalisation after each convolution.", recipe=BN_RECIPE),
})  # fmt: skip
