"""Residual networks (He et al. 2015/2016) and squeeze-and-excitation ResNets (Hu et al. 2017).

A residual block learns a correction F(x) added to its input, ``y = relu(F(x) + x)``: the shortcut lets
the gradient reach early layers unchanged, which is what made 100+ layer networks trainable.

* ``resnet18/34/50/101/152``: ImageNet ResNets with torchvision's names (state dicts load as they are).
  Below 64 px (or ``small_input=True``) the 7x7 stride-2 stem and its max-pool become one 3x3 stride-1
  convolution, the usual CIFAR adaptation.
* ``preact_resnet18/34/50``: pre-activation blocks (BN -> ReLU -> conv), identity shortcuts end to end,
  with a final BN + ReLU before pooling.
* ``resnet20/32/44/56/110``: the paper's CIFAR networks: a 3x3 conv with 16 channels, three stages of
  n = (depth - 2) / 6 basic blocks at 16/32/64 channels, global pooling, one FC layer. ``shortcut="A"``
  (default, as in the paper's CIFAR experiments) subsamples and zero-pads when the shape changes; ``"B"``
  uses 1x1 projection convolutions.
* ``se_resnet18/34/50``: a squeeze-and-excitation gate on every residual branch (reduction 16).

``dilation=True`` replaces the strides of the last two stages with dilated convolutions (output
stride 8 instead of 32, same parameters), useful for dense prediction and small images.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelError
from .base import Classifier
from .layers import default_norm, he_init, is_small
from .registry import IMAGENET_MEAN, IMAGENET_STD, ModelInfo, Variant, register_variants

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
# The ImageNet-depth ResNets start unstably at the default lr (resnet18 on digits: first-epoch loss
# 4.9, 78% after 3 epochs); one warmup epoch gives 97%. Goyal et al. 2017 warm up for the same reason.
IMAGENET_RECIPE = {"warmup_epochs": 1.0}


class SEBlock(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2017): global average pool ("squeeze"), a two-layer
    bottleneck with ratio ``reduction`` and a sigmoid gate ("excitation") that rescales each channel."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.fc1 = nn.Conv2d(channels, hidden, 1)  # 1x1 convs act as FC layers on the pooled vector
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.adaptive_avg_pool2d(x, 1)
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(s), inplace=True)))


def conv3x3(in_ch: int, out_ch: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    """3x3 convolution without bias (a BN follows), padded to keep the size at stride 1."""
    return nn.Conv2d(in_ch, out_ch, 3, stride, padding=dilation, dilation=dilation, bias=False)


def conv1x1(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 1, stride, bias=False)


class ShortcutA(nn.Module):
    """He et al.'s option A shortcut: subsample by ``stride`` and zero-pad the new channels (no parameters)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.stride, self.pad = stride, out_ch - in_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.pad)) if self.pad else x


def projection(in_ch: int, out_ch: int, stride: int) -> nn.Sequential:
    """Option B shortcut (torchvision's ``downsample``): 1x1 conv with stride, then BN."""
    return nn.Sequential(conv1x1(in_ch, out_ch, stride), nn.BatchNorm2d(out_ch))


class _PostActivation(nn.Module):
    """The end every post-activation block shares: the SE gate (if any), the shortcut added, then ReLU."""

    def _shortcut(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.downsample is None else self.downsample(x)

    def _merge(self, out: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "se"):
            out = self.se(out)
        return self.relu(out + identity)


class BasicBlock(_PostActivation):
    """ResNet basic block: two 3x3 conv-BN with ReLU, plus the shortcut, then ReLU (torchvision names).

    ``se`` adds a squeeze-and-excitation gate on the residual branch before the addition.
    """

    expansion = 1

    def __init__(self, in_ch: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 dilation: int = 1, se_reduction: int | None = None) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_ch, planes, stride, dilation)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes, 1, dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        if se_reduction:
            self.se = SEBlock(planes, se_reduction)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = self._shortcut(x)  # first, as before the blocks shared _merge: summaries list it first
        out = self.relu(self.bn1(self.conv1(x)))
        return self._merge(self.bn2(self.conv2(out)), identity)


class Bottleneck(_PostActivation):
    """ResNet bottleneck block: 1x1 reduce, 3x3 (carries the stride, as torchvision's "v1.5"), 1x1 expand x4."""

    expansion = 4

    def __init__(self, in_ch: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 dilation: int = 1, se_reduction: int | None = None) -> None:
        super().__init__()
        self.conv1 = conv1x1(in_ch, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride, dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * 4)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        if se_reduction:
            self.se = SEBlock(planes * 4, se_reduction)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = self._shortcut(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self._merge(self.bn3(self.conv3(out)), identity)


class PreActBasicBlock(nn.Module):
    """Pre-activation basic block (He et al. 2016, "Identity mappings"): BN -> ReLU -> conv, twice.

    Nothing follows the addition, so the shortcut path is a pure identity from block to block.
    """

    expansion = 1

    def __init__(self, in_ch: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 dilation: int = 1, se_reduction: int | None = None) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv1 = conv3x3(in_ch, planes, stride, dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, 1, dilation)
        self.relu = nn.ReLU(inplace=True)
        if se_reduction:
            self.se = SEBlock(planes, se_reduction)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn1(x))
        # The projection shortcut sees the normalised input, as in the paper's full pre-activation unit.
        identity = x if self.downsample is None else self.downsample(pre)
        out = self.conv2(self.relu(self.bn2(self.conv1(pre))))
        if hasattr(self, "se"):
            out = self.se(out)
        return out + identity


class PreActBottleneck(nn.Module):
    """Pre-activation bottleneck: (BN -> ReLU -> conv) with 1x1, 3x3, 1x1 x4."""

    expansion = 4

    def __init__(self, in_ch: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 dilation: int = 1, se_reduction: int | None = None) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv1 = conv1x1(in_ch, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride, dilation)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * 4)
        self.relu = nn.ReLU(inplace=True)
        if se_reduction:
            self.se = SEBlock(planes * 4, se_reduction)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn1(x))
        identity = x if self.downsample is None else self.downsample(pre)
        out = self.conv2(self.relu(self.bn2(self.conv1(pre))))
        out = self.conv3(self.relu(self.bn3(out)))
        if hasattr(self, "se"):
            out = self.se(out)
        return out + identity


Block = type[BasicBlock] | type[Bottleneck] | type[PreActBasicBlock] | type[PreActBottleneck]


class ResNet(Classifier):
    """Stem, stages ``layer1..layerN`` of residual blocks, global average pool, ``fc``."""

    def __init__(self, block: Block, layers: Sequence[int], num_classes: int = 1000, in_chans: int = 3,
                 widths: Sequence[int] = (64, 128, 256, 512), stem: str = "imagenet", shortcut: str = "B",
                 se_reduction: int | None = None, dilation: Sequence[bool] = (),
                 zero_init_residual: bool = False) -> None:
        super().__init__()
        if shortcut not in ("A", "B"):
            raise ModelError(f"shortcut must be 'A' (zero-padding identity) or 'B' (projection), got {shortcut!r}")
        self.preact = block in (PreActBasicBlock, PreActBottleneck)
        stem_width = widths[0] if stem != "cifar" else 16
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_chans, stem_width, 7, 2, 3, bias=False)
            self.maxpool: nn.Module = nn.MaxPool2d(3, 2, 1)
        else:  # "small" (CIFAR-style ImageNet ResNet) and "cifar" (the paper's CIFAR ResNets)
            self.conv1 = nn.Conv2d(in_chans, stem_width, 3, 1, 1, bias=False)
            self.maxpool = nn.Identity()
        self.bn1 = nn.BatchNorm2d(stem_width)
        self.relu = nn.ReLU(inplace=True)
        dilation = list(dilation) + [False] * (len(layers) - 1 - len(dilation))
        self._in, self._dilation = stem_width, 1
        self.stages: list[str] = []
        for i, (n, w) in enumerate(zip(layers, widths, strict=True)):
            stride, dilate = (1, False) if i == 0 else (2, dilation[i - 1])
            name = f"layer{i + 1}"
            setattr(self, name, self._make_stage(block, w, n, stride, dilate, shortcut, se_reduction))
            self.stages.append(name)
        self.num_features = self._in
        if self.preact:
            # Pre-activation blocks end on a convolution: normalise and rectify before pooling.
            self.final_bn = nn.BatchNorm2d(self._in)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(self._in, num_classes)
        he_init(self)
        if zero_init_residual and not self.preact:
            # Each block starts as the identity (Goyal et al. 2017).
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.zeros_(m.bn3.weight)
                elif isinstance(m, BasicBlock):
                    nn.init.zeros_(m.bn2.weight)

    def _make_stage(self, block: Block, planes: int, n: int, stride: int, dilate: bool, shortcut: str,
                    se_reduction: int | None) -> nn.Sequential:
        prev_dilation = self._dilation
        if dilate:
            self._dilation *= stride
            stride = 1
        out = planes * block.expansion
        downsample = None
        if stride != 1 or self._in != out:
            if shortcut == "A":
                downsample = ShortcutA(self._in, out, stride)
            elif self.preact:  # the input is already normalised: a bare 1x1 convolution
                downsample = nn.Sequential(conv1x1(self._in, out, stride))
            else:
                downsample = projection(self._in, out, stride)
        blocks = [block(self._in, planes, stride, downsample, prev_dilation, se_reduction)]
        self._in = out
        blocks += [block(out, planes, 1, None, self._dilation, se_reduction) for _ in range(1, n)]
        return nn.Sequential(*blocks)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for name in self.stages:
            x = getattr(self, name)(x)
        if self.preact:
            x = self.relu(self.final_bn(x))
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)
        return x if pre_logits else self.fc(x)


_DEPTHS: dict[int, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, ...]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}
_PREACT = {BasicBlock: PreActBasicBlock, Bottleneck: PreActBottleneck}


def _imagenet_resnet(name: str, depth: int, num_classes: int = 1000, in_chans: int = 3, input_size=(224, 224),
                     small_input: bool | None = None, preact: bool = False, se_reduction: int | None = None,
                     dilation: bool = False, zero_init_residual: bool = False) -> ResNet:
    """ResNet ``name`` of ``depth`` layers (torchvision layout at >= 64 px, a small stem below)."""
    block, layers = _DEPTHS[depth]
    model = ResNet(
        _PREACT[block] if preact else block, layers, num_classes, in_chans,
        stem="small" if is_small(input_size, small_input) else "imagenet",
        se_reduction=se_reduction, dilation=(False, True, True) if dilation else (),
        zero_init_residual=zero_init_residual,
    )  # fmt: skip
    mean, std = default_norm(in_chans, IMAGENET_MEAN, IMAGENET_STD)
    model.info = ModelInfo(name, "resnet", (in_chans, *input_size), num_classes, mean, std, "fc")
    return model


def _resnet(name: str, depth: int, num_classes: int = 1000, in_chans: int = 3, input_size=(224, 224),
            dilation: bool = False, zero_init_residual: bool = False, small_input: bool | None = None) -> ResNet:
    """An ImageNet ResNet; ``dilation`` trades the last two strides for dilation (segmentation backbones)."""
    return _imagenet_resnet(name, depth, num_classes, in_chans, input_size, small_input, dilation=dilation,
                            zero_init_residual=zero_init_residual)  # fmt: skip


def _preact_resnet(name: str, depth: int, num_classes: int = 1000, in_chans: int = 3, input_size=(224, 224),
                   small_input: bool | None = None) -> ResNet:  # fmt: skip
    return _imagenet_resnet(name, depth, num_classes, in_chans, input_size, small_input, preact=True)


def _se_resnet(name: str, depth: int, num_classes: int = 1000, in_chans: int = 3, input_size=(224, 224),
               reduction: int = 16, small_input: bool | None = None) -> ResNet:  # fmt: skip
    return _imagenet_resnet(name, depth, num_classes, in_chans, input_size, small_input, se_reduction=reduction)


def _cifar_resnet(name: str, depth: int, num_classes: int = 10, in_chans: int = 3, input_size=(32, 32),
                  shortcut: str = "A") -> ResNet:  # fmt: skip
    """The paper's CIFAR ResNet of ``depth`` = 6n + 2 layers: 3 stages x n basic blocks at 16/32/64 channels."""
    n = (depth - 2) // 6
    model = ResNet(BasicBlock, (n, n, n), num_classes, in_chans, widths=(16, 32, 64), stem="cifar",
                   shortcut=shortcut)
    mean, std = default_norm(in_chans, CIFAR_MEAN, CIFAR_STD)
    model.info = ModelInfo(name, "resnet", (in_chans, *input_size), num_classes, mean, std, "fc")
    return model


def _table(names: dict[str, int], recipe: dict | None = None) -> dict[str, Variant]:
    return {n: Variant(_DOCS[n], {"depth": d}, recipe) for n, d in names.items()}


_DOCS = {
    "resnet18": "ResNet-18: basic blocks (2, 2, 2, 2), 11.7M parameters.",
    "resnet34": "ResNet-34: basic blocks (3, 4, 6, 3), 21.8M parameters.",
    "resnet50": "ResNet-50: bottleneck blocks (3, 4, 6, 3), 25.6M parameters.",
    "resnet101": "ResNet-101: bottleneck blocks (3, 4, 23, 3), 44.5M parameters.",
    "resnet152": "ResNet-152: bottleneck blocks (3, 8, 36, 3), 60.2M parameters.",
    "preact_resnet18": "Pre-activation ResNet-18 (BN -> ReLU -> conv blocks, He et al. 2016).",
    "preact_resnet34": "Pre-activation ResNet-34.",
    "preact_resnet50": "Pre-activation ResNet-50 (bottleneck blocks).",
    "resnet20": "CIFAR ResNet-20: 3 stages x 3 basic blocks at 16/32/64 channels, 0.27M parameters.",
    "resnet32": "CIFAR ResNet-32: 3 stages x 5 basic blocks, 0.46M parameters.",
    "resnet44": "CIFAR ResNet-44: 3 stages x 7 basic blocks, 0.66M parameters.",
    "resnet56": "CIFAR ResNet-56: 3 stages x 9 basic blocks, 0.85M parameters.",
    "resnet110": "CIFAR ResNet-110: 3 stages x 18 basic blocks, 1.7M parameters.",
    "se_resnet18": "SE-ResNet-18: ResNet-18 with a squeeze-and-excitation gate in every block.",
    "se_resnet34": "SE-ResNet-34.",
    "se_resnet50": "SE-ResNet-50 (28.1M parameters, the ILSVRC 2017 winner's building block).",
}  # fmt: skip
# ImageNet ResNets (torchvision layout at >= 64 px), pre-activation (He et al. 2016), squeeze-and-excitation.
register_variants("resnet", (3, 224, 224), _resnet,
                  _table({"resnet18": 18, "resnet34": 34, "resnet50": 50, "resnet101": 101, "resnet152": 152},
                         IMAGENET_RECIPE))  # fmt: skip
register_variants("resnet", (3, 224, 224), _preact_resnet,
                  _table({"preact_resnet18": 18, "preact_resnet34": 34, "preact_resnet50": 50}, IMAGENET_RECIPE))
register_variants("resnet", (3, 224, 224), _se_resnet,
                  _table({"se_resnet18": 18, "se_resnet34": 34, "se_resnet50": 50}, IMAGENET_RECIPE))
# The paper's CIFAR ResNets (6n + 2 layers).
register_variants("resnet", (3, 32, 32), _cifar_resnet,
                  _table({"resnet20": 20, "resnet32": 32, "resnet44": 44, "resnet56": 56, "resnet110": 110}))
