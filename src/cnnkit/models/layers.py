"""What several model families share: activations and pooling by name, and the model defaults.

Activations by name (``relu``, ``tanh``, LeCun's scaled ``lecun_tanh``, ...; LeNet and the MLPs),
max/average/Lp pooling by name (LeNet, VGG), and the two rules every family asks: the mean/std a
model declares and when to build the small-image variant. A block used by one family lives in that
family's file: the residual blocks and squeeze-and-excitation in ``resnet``, dense layers and
transitions in ``densenet``, the Inception module in ``inception``, depthwise separable convolution
(and conv-BN-activation) in ``mobilenet``, the fire module in ``squeezenet``, local response
normalisation in ``alexnet``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
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


def he_init(model: nn.Module) -> None:
    """torchvision's initialisation of ReLU conv nets: He normal (fan-out) convolutions, batch norm at 1 and 0."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
