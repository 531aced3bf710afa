"""GoogLeNet / Inception v1 (Szegedy et al. 2014).

Nine Inception modules (parallel 1x1, 3x3, "5x5" and pooling branches; 1x1 convolutions reduce the
channels first) between a small stem and a global-average-pool head: 22 layers, ~6.6M parameters, 12x
fewer than AlexNet. Parameter names follow torchvision, so its state dicts load as they are (torchvision's
"5x5" branch is a 3x3 convolution; ``kernel_5x5=5`` gives the paper's layer instead).

Auxiliary classifiers: ``aux_logits=True`` adds the two side heads on inception4a and inception4d that the
paper used to push gradient into the middle of the network. They only run in training mode, where the
forward pass then returns :class:`InceptionOutputs` ``(logits, aux_logits2, aux_logits1)`` instead of a
tensor; :func:`inception_loss` combines them as the paper does (main loss + 0.3 x each auxiliary loss).
In eval mode, and always with the default ``aux_logits=False``, the forward pass returns the logits tensor.

Below 64 px (or ``small_input=True``) the 7x7 stride-2 stem becomes a 3x3 stride-1 convolution with no
max-pool after it, so a 32 px image reaches the Inception modules at 16x16 instead of 1x1.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelError
from .base import Classifier, reset_classifier
from .layers import default_norm, is_small
from .registry import IMAGENET_MEAN, IMAGENET_STD, ModelInfo, register_model


class BasicConv2d(nn.Module):
    """Conv (no bias) -> BN (eps 1e-3) -> ReLU with torchvision's GoogLeNet names ``conv`` and ``bn``."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 1, stride: int = 1, padding: int = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(out_ch, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


class InceptionModule(nn.Module):
    """The Inception (v1) module: 1x1, 1x1->3x3, 1x1->"5x5" and pool->1x1 branches, concatenated.

    The 1x1 convolutions before the larger ones reduce the channels (the lectures' "1x1 conv as
    bottleneck"). ``kernel_5x5=3`` reproduces torchvision (and the weights it ships), whose "5x5"
    branch is a 3x3 conv (pytorch/vision#906); pass 5 for the paper's architecture.
    """

    def __init__(self, in_ch: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int, ch5x5: int,
                 pool_proj: int, kernel_5x5: int = 3) -> None:
        super().__init__()
        self.branch1 = BasicConv2d(in_ch, ch1x1, 1)
        self.branch2 = nn.Sequential(BasicConv2d(in_ch, ch3x3red, 1), BasicConv2d(ch3x3red, ch3x3, 3, padding=1))
        self.branch3 = nn.Sequential(
            BasicConv2d(in_ch, ch5x5red, 1), BasicConv2d(ch5x5red, ch5x5, kernel_5x5, padding=kernel_5x5 // 2)
        )
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
                                     BasicConv2d(in_ch, pool_proj, 1))
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionAux(nn.Module):
    """GoogLeNet's auxiliary classifier: avg-pool to 4x4, 1x1 conv 128, FC 1024, dropout 0.7, FC classes."""

    def __init__(self, in_ch: int, num_classes: int, dropout: float = 0.7) -> None:
        super().__init__()
        self.conv = BasicConv2d(in_ch, 128, 1)
        self.fc1 = nn.Linear(2048, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(p=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.conv(F.adaptive_avg_pool2d(x, (4, 4))), 1)
        return self.fc2(self.dropout(F.relu(self.fc1(x), inplace=True)))


class InceptionOutputs(NamedTuple):
    """What a training-mode forward returns when the auxiliary heads are on (torchvision's order)."""

    logits: torch.Tensor
    aux_logits2: torch.Tensor | None
    aux_logits1: torch.Tensor | None


def inception_loss(
    outputs: torch.Tensor | InceptionOutputs,
    target: torch.Tensor,
    criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
    aux_weight: float = 0.3,
) -> torch.Tensor:
    """Loss for GoogLeNet outputs: ``criterion(logits) + aux_weight * (criterion(aux1) + criterion(aux2))``.

    A plain tensor (eval mode, or ``aux_logits=False``) just gets ``criterion``.
    """
    if not isinstance(outputs, InceptionOutputs):
        return criterion(outputs, target)
    loss = criterion(outputs.logits, target)
    for aux in (outputs.aux_logits1, outputs.aux_logits2):
        if aux is not None:
            loss = loss + aux_weight * criterion(aux, target)
    return loss


class GoogLeNet(Classifier):
    """Inception v1 with torchvision's module names (conv1..3, inception3a..5b, aux1/aux2, fc)."""

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, small: bool = False, aux_logits: bool = False,
                 transform_input: bool = False, dropout: float = 0.2, dropout_aux: float = 0.7,
                 kernel_5x5: int = 3) -> None:
        super().__init__()
        if transform_input and in_chans != 3:
            raise ModelError("transform_input re-normalises RGB inputs; it needs in_chans=3")
        self.aux_logits, self.transform_input = aux_logits, transform_input
        if small:
            self.conv1 = BasicConv2d(in_chans, 64, 3, stride=1, padding=1)
            self.maxpool1: nn.Module = nn.Identity()
        else:
            self.conv1 = BasicConv2d(in_chans, 64, 7, stride=2, padding=3)
            self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, 1)
        self.conv3 = BasicConv2d(64, 192, 3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)

        def block(*ch: int) -> InceptionModule:
            return InceptionModule(*ch, kernel_5x5=kernel_5x5)

        # in, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj (the paper's Table 1)
        self.inception3a = block(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = block(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = block(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = block(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = block(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = block(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = block(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.inception5a = block(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = block(832, 384, 192, 384, 48, 128, 128)
        if aux_logits:
            self.aux1 = InceptionAux(512, num_classes, dropout_aux)
            self.aux2 = InceptionAux(528, num_classes, dropout_aux)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(1024, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _transform(self, x: torch.Tensor) -> torch.Tensor:
        # The ported Caffe weights expect inputs scaled to [-1, 1]; this maps ImageNet-normalised
        # inputs there (only wanted with torchvision's pretrained weights).
        if not self.transform_input:
            return x
        mean = x.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = x.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
        return x * (std / 0.5) + (mean - 0.5) / 0.5

    def _run(self, x: torch.Tensor, with_aux: bool):
        x = self.maxpool1(self.conv1(self._transform(x)))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        aux1 = self.aux1(x) if with_aux else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if with_aux else None
        x = self.maxpool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        return x, aux2, aux1

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x, with_aux=False)[0]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.dropout(torch.flatten(self.avgpool(x), 1))
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor | InceptionOutputs:  # type: ignore[override]
        if self.training and self.aux_logits:
            feats, aux2, aux1 = self._run(x, with_aux=True)
            return InceptionOutputs(self.forward_head(feats), aux2, aux1)
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        """New main classifier, and new auxiliary heads' last layers when they exist."""
        reset_classifier(self, num_classes)
        if self.aux_logits:
            for aux in (self.aux1, self.aux2):
                aux.fc2 = nn.Linear(aux.fc2.in_features, num_classes).to(aux.fc2.weight.device)


@register_model("inception", (3, 224, 224))
def googlenet(num_classes: int = 1000, in_chans: int = 3, input_size=(224, 224), aux_logits: bool = False,
              transform_input: bool = False, dropout: float = 0.2, dropout_aux: float = 0.7, kernel_5x5: int = 3,
              small_input: bool | None = None) -> GoogLeNet:
    """GoogLeNet (Inception v1); ``aux_logits=True`` adds the training-time auxiliary classifiers."""
    if kernel_5x5 not in (3, 5):
        raise ModelError(f"kernel_5x5 must be 3 (torchvision) or 5 (paper), got {kernel_5x5}")
    small = is_small(input_size, small_input)
    model = GoogLeNet(num_classes, in_chans, small, aux_logits, transform_input, dropout, dropout_aux, kernel_5x5)
    mean, std = default_norm(in_chans, IMAGENET_MEAN, IMAGENET_STD)
    model.info = ModelInfo("googlenet", "inception", (in_chans, *input_size), num_classes, mean, std, "fc",
                           min_size=4 if small else 15)
    return model
