"""SqueezeNet (Iandola et al. 2016): AlexNet-level accuracy with 50x fewer parameters.

Fire modules squeeze the channels with 1x1 convolutions before expanding with a mix of 1x1 and 3x3
filters, and the classifier is a 1x1 convolution to ``num_classes`` maps followed by global average
pooling: no fully connected layer at all (``reset_classifier`` swaps the conv at ``classifier.1``).
``squeezenet1_1`` moves the poolings earlier for 2.4x less computation at the same accuracy. Names
follow torchvision, so its state dicts load as they are. Below 64 px (or ``small_input=True``) the first
convolution becomes 3x3 stride 1 with padding.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import Classifier
from .layers import default_norm, is_small
from .registry import IMAGENET_MEAN, IMAGENET_STD, ModelInfo, register_model

# No batch norm, and the classifier ends in ReLU + average pooling: SGD at 0.05 (with or without
# warmup) and Adam at 1e-3 stay at chance on digits for 3 epochs; Adam at 3e-4 reaches 86% after 10 epochs.
RECIPE = {"optimizer": "adam", "lr": 3e-4}


class Fire(nn.Module):
    """SqueezeNet's fire module: a 1x1 "squeeze" conv, then 1x1 and 3x3 "expand" convs concatenated."""

    def __init__(self, in_ch: int, squeeze: int, expand1x1: int, expand3x3: int) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(in_ch, squeeze, 1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze, expand1x1, 1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze, expand3x3, 3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.squeeze_activation(self.squeeze(x))
        return torch.cat([self.expand1x1_activation(self.expand1x1(x)),
                          self.expand3x3_activation(self.expand3x3(x))], 1)


class SqueezeNet(Classifier):
    """``features`` (conv, fire modules, max-pools) and ``classifier`` (dropout, 1x1 conv, ReLU, global pool)."""

    def __init__(self, version: str, num_classes: int = 1000, in_chans: int = 3, small: bool = False,
                 dropout: float = 0.5) -> None:
        super().__init__()

        def pool() -> nn.MaxPool2d:
            return nn.MaxPool2d(3, 2, ceil_mode=True)

        if version == "1_0":
            stem = nn.Conv2d(in_chans, 96, 3, 1, 1) if small else nn.Conv2d(in_chans, 96, 7, 2)
            layers = [stem, nn.ReLU(inplace=True), pool(),
                      Fire(96, 16, 64, 64), Fire(128, 16, 64, 64), Fire(128, 32, 128, 128), pool(),
                      Fire(256, 32, 128, 128), Fire(256, 48, 192, 192), Fire(384, 48, 192, 192),
                      Fire(384, 64, 256, 256), pool(), Fire(512, 64, 256, 256)]  # fmt: skip
        else:
            stem = nn.Conv2d(in_chans, 64, 3, 1, 1) if small else nn.Conv2d(in_chans, 64, 3, 2)
            layers = [stem, nn.ReLU(inplace=True), pool(),
                      Fire(64, 16, 64, 64), Fire(128, 16, 64, 64), pool(),
                      Fire(128, 32, 128, 128), Fire(256, 32, 128, 128), pool(),
                      Fire(256, 48, 192, 192), Fire(384, 48, 192, 192), Fire(384, 64, 256, 256),
                      Fire(512, 64, 256, 256)]  # fmt: skip
        self.features = nn.Sequential(*layers)
        final_conv = nn.Conv2d(512, num_classes, 1)
        # The ReLU before pooling is torchvision's (logits are non-negative); kept for weight compatibility.
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), final_conv, nn.ReLU(inplace=True),
                                        nn.AdaptiveAvgPool2d((1, 1)))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                if m is final_conv:
                    nn.init.normal_(m.weight, 0.0, 0.01)
                else:
                    nn.init.kaiming_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if pre_logits:
            return torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        return torch.flatten(self.classifier(x), 1)


def _squeezenet(version: str, num_classes: int, in_chans: int, input_size: tuple[int, int], dropout: float,
                small_input: bool | None) -> SqueezeNet:
    small = is_small(input_size, small_input)
    model = SqueezeNet(version, num_classes, in_chans, small, dropout)
    mean, std = default_norm(in_chans, IMAGENET_MEAN, IMAGENET_STD)
    model.info = ModelInfo(f"squeezenet{version}", "squeezenet", (in_chans, *input_size), num_classes, mean, std,
                           "classifier.1", min_size=8 if small else {"1_0": 21, "1_1": 17}[version])
    return model


@register_model("squeezenet", (3, 224, 224), recipe=RECIPE)
def squeezenet1_0(num_classes: int = 1000, in_chans: int = 3, input_size=(224, 224), dropout: float = 0.5,
                  small_input: bool | None = None) -> SqueezeNet:
    """SqueezeNet 1.0: fire modules, 1x1-conv classifier, 1.25M parameters."""
    return _squeezenet("1_0", num_classes, in_chans, input_size, dropout, small_input)


@register_model("squeezenet", (3, 224, 224), recipe=RECIPE)
def squeezenet1_1(num_classes: int = 1000, in_chans: int = 3, input_size=(224, 224), dropout: float = 0.5,
                  small_input: bool | None = None) -> SqueezeNet:
    """SqueezeNet 1.1: earlier pooling, 2.4x fewer operations than 1.0 at the same accuracy."""
    return _squeezenet("1_1", num_classes, in_chans, input_size, dropout, small_input)
