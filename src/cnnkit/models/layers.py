"""Shared building blocks, named as the lectures name them.

Conv-BN-activation (with a dilation option for dilated/atrous convolution), local response
normalisation, max/average/Lp pooling, depthwise separable convolution, the Inception module,
residual basic/bottleneck blocks (plain, pre-activation, squeeze-and-excitation), dense blocks with
their transitions, and SqueezeNet's fire module. Attribute names follow torchvision wherever a
torchvision model uses the block, so its state dicts load as they are.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


class ScaledTanh(nn.Module):
    """LeCun's squashing function ``A * tanh(S * x)`` with A = 1.7159, S = 2/3.

    The constants make f(1) = 1 and f(-1) = -1, so targets of +-1 sit where the slope is still large.
    """

    def __init__(self, amplitude: float = 1.7159, slope: float = 2.0 / 3.0) -> None:
        super().__init__()
        self.amplitude, self.slope = amplitude, slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.amplitude * torch.tanh(self.slope * x)

    def extra_repr(self) -> str:
        return f"amplitude={self.amplitude}, slope={self.slope:.4f}"


ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": lambda: nn.ReLU(inplace=True),
    "leaky_relu": lambda: nn.LeakyReLU(0.01, inplace=True),
    "elu": lambda: nn.ELU(inplace=True),
    "tanh": nn.Tanh,
    "lecun_tanh": ScaledTanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "identity": nn.Identity,
}


def make_activation(name: str) -> nn.Module:
    """An activation module by name (``relu``, ``tanh``, ``lecun_tanh``, ``sigmoid``, ``elu``, ...)."""
    from ..errors import ModelError, suggest

    if name not in ACTIVATIONS:
        raise ModelError(f"unknown activation {name!r}", hint=suggest(name, ACTIVATIONS))
    return ACTIVATIONS[name]()


POOLS = ("max", "avg", "lp")


def make_pool(kind: str, kernel_size: int = 2, stride: int | None = None, ceil_mode: bool = False,
              p: float = 2.0) -> nn.Module:
    """A pooling layer by name: ``max``, ``avg`` or ``lp`` (power-mean ``(sum x^p)^(1/p)``, p=2 by default).

    Lp pooling interpolates between average pooling (p=1, up to a constant) and max pooling (p -> inf).
    """
    from ..errors import ModelError, suggest

    if kind == "max":
        return nn.MaxPool2d(kernel_size, stride, ceil_mode=ceil_mode)
    if kind == "avg":
        return nn.AvgPool2d(kernel_size, stride, ceil_mode=ceil_mode)
    if kind == "lp":
        return nn.LPPool2d(p, kernel_size, stride, ceil_mode=ceil_mode)
    raise ModelError(f"unknown pooling {kind!r}", hint=suggest(kind, POOLS))


def lrn(size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0) -> nn.LocalResponseNorm:
    """Local response normalisation across channels with AlexNet's constants (n=5, alpha=1e-4, beta=0.75, k=2)."""
    return nn.LocalResponseNorm(size, alpha=alpha, beta=beta, k=k)


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


class BasicConv2d(nn.Module):
    """Conv (no bias) -> BN (eps 1e-3) -> ReLU with torchvision's GoogLeNet names ``conv`` and ``bn``."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 1, stride: int = 1, padding: int = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(out_ch, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


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


class BasicBlock(nn.Module):
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
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if hasattr(self, "se"):
            out = self.se(out)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
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
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if hasattr(self, "se"):
            out = self.se(out)
        return self.relu(out + identity)


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
        out = self.conv1(pre)
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        if hasattr(self, "se"):
            out = self.se(out)
        return out + identity


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


def default_norm(in_chans: int, rgb_mean: tuple[float, ...], rgb_std: tuple[float, ...]):
    """Mean/std a model declares: the dataset's RGB statistics for 3 channels, 0.5 otherwise.

    ImageNet/CIFAR statistics describe colour photographs; a grey (digits-style) input gets (0.5,) so
    ``(x - 0.5) / 0.5`` maps [0, 1] to [-1, 1].
    """
    if in_chans == 3:
        return tuple(rgb_mean), tuple(rgb_std)
    return (0.5,) * in_chans, (0.5,) * in_chans


def is_small(input_size: tuple[int, int], small_input: bool | None) -> bool:
    """Whether to build the small-image (CIFAR/digits) variant: forced by ``small_input``, else H or W < 64."""
    if small_input is not None:
        return bool(small_input)
    return min(input_size) < 64
