"""MobileNet v1 (Howard et al. 2017): a 3x3 convolution then 13 depthwise separable convolutions.

Factorising each k x k convolution into a depthwise filter per channel and a 1x1 pointwise mix cuts
its cost by roughly ``1/N + 1/k^2`` (8-9x for 3x3): 4.2M parameters against GoogLeNet's 6.8M for similar
accuracy. Two knobs trade accuracy for speed: the width multiplier ``width_mult`` (alpha: every layer
has alpha x channels, cost ~alpha^2) and the resolution (rho: pass a smaller ``input_size``, e.g. 192,
160 or 128; cost ~rho^2). Below 64 px (or ``small_input=True``) the first convolution has stride 1, so a
32 px image ends at 2x2 instead of 1x1.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ModelError
from .base import Classifier
from .layers import default_norm, he_init, is_small, make_activation
from .registry import IMAGENET_MEAN, IMAGENET_STD, ModelInfo, register_model

# (output channels, stride) of the 13 depthwise separable layers (the paper's Table 1).
_CFG = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
        (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))  # fmt: skip


class ConvBnAct(nn.Sequential):
    """conv -> batch-norm -> activation, the unit most modern CNNs are made of.

    ``dilation > 1`` gives a dilated (atrous) convolution: a wider receptive field at the same
    resolution and parameter count; the default padding keeps the spatial size at stride 1.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | None = None,
        dilation: int = 1,
        groups: int = 1,
        bn: bool = True,
        act: str = "relu",
    ) -> None:
        if padding is None:
            padding = dilation * (kernel_size - 1) // 2  # "same" size for odd kernels at stride 1
        layers: list[nn.Module] = [
            nn.Conv2d(in_ch, out_ch, kernel_size, stride, padding, dilation=dilation, groups=groups, bias=not bn)
        ]
        if bn:
            layers.append(nn.BatchNorm2d(out_ch))
        layers.append(make_activation(act))
        super().__init__(*layers)


class DepthwiseSeparable(nn.Module):
    """MobileNet's factorised convolution: a depthwise k x k conv (one filter per channel) then a
    pointwise 1x1 conv mixing channels, each followed by BN and ReLU.

    Costs ``k*k*M + M*N`` weights instead of ``k*k*M*N`` for M inputs and N outputs.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, kernel_size: int = 3, dilation: int = 1) -> None:
        super().__init__()
        self.dw = ConvBnAct(in_ch, in_ch, kernel_size, stride, dilation=dilation, groups=in_ch)
        self.pw = ConvBnAct(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dw(x))


class MobileNetV1(Classifier):
    """``features`` (conv 3x3 + 13 depthwise separable blocks), global average pool, dropout, ``fc``."""

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, width_mult: float = 1.0, small: bool = False,
                 dropout: float = 0.0) -> None:
        super().__init__()

        def ch(c: int) -> int:
            return max(8, int(c * width_mult))

        layers: list[nn.Module] = [ConvBnAct(in_chans, ch(32), 3, stride=1 if small else 2)]
        c = ch(32)
        for out, stride in _CFG:
            layers.append(DepthwiseSeparable(c, ch(out), stride))
            c = ch(out)
        self.features = nn.Sequential(*layers)
        self.num_features = c
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(c, num_classes)
        he_init(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.dropout(torch.flatten(self.avgpool(x), 1))
        return x if pre_logits else self.fc(x)


@register_model("mobilenet", (3, 224, 224))
def mobilenet_v1(num_classes: int = 1000, in_chans: int = 3, input_size=(224, 224), width_mult: float = 1.0,
                 dropout: float = 0.0, small_input: bool | None = None) -> MobileNetV1:
    """MobileNet v1 (depthwise separable convolutions); ``width_mult`` scales every layer's channels."""
    if not 0 < width_mult <= 4:
        raise ModelError(f"width_mult must be in (0, 4], got {width_mult}", hint="the paper uses 1, 0.75, 0.5, 0.25")
    model = MobileNetV1(num_classes, in_chans, width_mult, is_small(input_size, small_input), dropout)
    mean, std = default_norm(in_chans, IMAGENET_MEAN, IMAGENET_STD)
    model.info = ModelInfo("mobilenet_v1", "mobilenet", (in_chans, *input_size), num_classes, mean, std, "fc")
    return model
