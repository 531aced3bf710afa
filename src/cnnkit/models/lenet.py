"""LeNet-1 (LeCun et al. 1989) and LeNet-5 (LeCun, Bottou, Bengio and Haffner 1998).

``lenet5`` is the modern reading (ReLU, max-pool, dense layers); ``lenet5(classic=True)`` rebuilds the
1998 paper layer by layer: scaled tanh, trainable subsampling, the partial C3 connection table and
the Euclidean RBF output layer.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelError
from .base import Classifier
from .layers import ScaledTanh, make_activation, make_pool
from .registry import ModelInfo, register_model


def _conv_out(n: int, k: int, s: int = 1, p: int = 0) -> int:
    # The lectures' output size (N - F + 2P)/S + 1, floored as the framework does.
    return (n - k + 2 * p) // s + 1


def _check_size(name: str, input_size: tuple[int, int], minimum: int) -> tuple[int, int]:
    h, w = input_size
    if min(h, w) < minimum:
        raise ModelError(f"{name} needs inputs of at least {minimum}x{minimum} pixels, got {h}x{w}")
    return h, w


def _conv_pool_body(in_chans: int, widths: tuple[int, int], act: str, pool: str, h: int, w: int
                    ) -> tuple[nn.Sequential, int]:  # fmt: skip
    """LeNet's body, two stages of 5x5 convolution, activation and 2x2 pooling; and its output size per image."""
    c1, c2 = widths
    body = nn.Sequential(
        nn.Conv2d(in_chans, c1, 5), make_activation(act), make_pool(pool, 2),
        nn.Conv2d(c1, c2, 5), make_activation(act), make_pool(pool, 2),
    )  # fmt: skip
    return body, c2 * (_conv_out(_conv_out(h, 5) // 2, 5) // 2) * (_conv_out(_conv_out(w, 5) // 2, 5) // 2)


def _gray_norm(in_chans: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    return (0.5,) * in_chans, (0.5,) * in_chans


class LeNet5(Classifier):
    """LeNet-5, modern form: conv5-6, pool, conv5-16, pool, FC-120, FC-84, FC-classes, ReLU + max-pool."""

    def __init__(self, num_classes: int = 10, in_chans: int = 1, input_size=(32, 32), act: str = "relu",
                 pool: str = "max") -> None:
        super().__init__()
        h, w = _check_size("lenet5", input_size, 16)
        self.features, n_features = _conv_pool_body(in_chans, (6, 16), act, pool, h, w)
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(n_features, 120), make_activation(act),
            nn.Linear(120, 84), make_activation(act), nn.Linear(84, num_classes),
        )  # fmt: skip
        mean, std = _gray_norm(in_chans)
        self.info = ModelInfo("lenet5", "lenet", (in_chans, h, w), num_classes, mean, std, "classifier.5", min_size=16)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.classifier[:-1](x) if pre_logits else self.classifier(x)


class LeNet1(Classifier):
    """LeNet-1: conv5-4, 2x2 average pool, conv5-12, 2x2 average pool, one FC output layer (tanh).

    On 28x28 digits: 4x24x24 -> 4x12x12 -> 12x8x8 -> 12x4x4 -> 10 classes. Parameters
    4*(25+1) + 12*(4*25+1) + (12*16+1)*10 = 104 + 1,212 + 1,930 = 3,246 (the second convolution is
    fully connected here; the 1989 network used a sparser map table).
    """

    def __init__(self, num_classes: int = 10, in_chans: int = 1, input_size=(28, 28), act: str = "tanh",
                 pool: str = "avg") -> None:
        super().__init__()
        h, w = _check_size("lenet1", input_size, 16)
        self.features, n_features = _conv_pool_body(in_chans, (4, 12), act, pool, h, w)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(n_features, num_classes)
        mean, std = _gray_norm(in_chans)
        self.info = ModelInfo("lenet1", "lenet", (in_chans, h, w), num_classes, mean, std, "fc", min_size=16)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.flatten(x)
        return x if pre_logits else self.fc(x)


# LeCun et al. 1998, Table I: which S2 maps (rows 0-5) each C3 map (0-15) reads. Maps 0-5 take three
# neighbouring maps, 6-11 four neighbouring, 12-14 four non-neighbouring, 15 all six. Breaking the
# symmetry this way forces the C3 maps to learn different features (and saves parameters).
C3_TABLE: tuple[tuple[int, ...], ...] = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (0, 4, 5), (0, 1, 5),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (0, 3, 4, 5), (0, 1, 4, 5), (0, 1, 2, 5),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)  # fmt: skip


class Subsampling(nn.Module):
    """LeNet-5's S2/S4: each unit adds its 2x2 inputs, multiplies by a trainable coefficient and adds a
    trainable bias (one coefficient and one bias per feature map)."""

    def __init__(self, channels: int, kernel_size: int = 2) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.weight = nn.Parameter(torch.full((channels,), 1.0 / kernel_size**2))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size
        summed = F.avg_pool2d(x, k) * (k * k)
        return summed * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class PartialConv2d(nn.Module):
    """A convolution whose output maps each read only the input maps listed in ``table``.

    Only the listed (output, input) kernels are parameters, so the count is
    ``sum(len(row)) * k * k + out_maps`` (1,516 for C3); they are scattered into a dense kernel at
    forward time, which keeps the layer a single ``conv2d`` call.
    """

    def __init__(self, in_ch: int, table: tuple[tuple[int, ...], ...], kernel_size: int = 5) -> None:
        super().__init__()
        out_idx = [o for o, row in enumerate(table) for _ in row]
        in_idx = [i for row in table for i in row]
        if max(in_idx) >= in_ch:
            raise ModelError(f"connection table refers to input map {max(in_idx)} but there are {in_ch}")
        self.in_ch, self.out_ch, self.kernel_size = in_ch, len(table), kernel_size
        self.weight = nn.Parameter(torch.empty(len(in_idx), kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(len(table)))
        # Derived from the table, so not saved in the state dict.
        self.register_buffer("out_idx", torch.tensor(out_idx), persistent=False)
        self.register_buffer("in_idx", torch.tensor(in_idx), persistent=False)

    def dense_weight(self) -> torch.Tensor:
        """The (out, in, k, k) kernel with zeros where the table has no connection."""
        k = self.kernel_size
        w = self.weight.new_zeros(self.out_ch, self.in_ch, k, k)
        return w.index_put((self.out_idx, self.in_idx), self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.dense_weight(), self.bias)


class RBFOutput(nn.Module):
    """Euclidean radial basis function units: ``y_j = sum_i (x_i - w_ji)^2``, returned as logits ``-y``.

    Each class has a prototype in F6's 84-dimensional space; the nearest prototype wins, so minus the
    distance works as a logit for cross-entropy. The paper drew the prototypes by hand as +-1 bitmaps
    of stylised 7x12 characters and kept them fixed; we draw +-1 codes from a seeded generator
    (``trainable=False``, stored as a buffer and not counted as parameters) or learn them.
    """

    def __init__(self, in_features: int, num_classes: int, trainable: bool = False, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        codes = torch.randint(0, 2, (num_classes, in_features), generator=g).float() * 2 - 1
        if trainable:
            self.prototypes = nn.Parameter(codes)
        else:
            self.register_buffer("prototypes", codes)
        self.in_features, self.num_classes, self.trainable = in_features, num_classes, trainable

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -((x.unsqueeze(1) - self.prototypes.unsqueeze(0)) ** 2).sum(-1)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, num_classes={self.num_classes}, trainable={self.trainable}"


class LeNet5Classic(Classifier):
    """LeNet-5 as published (LeCun et al. 1998), for 32x32 inputs (smaller inputs are zero-padded to 32).

    Layers and trainable parameters for one input channel and 10 classes (paper, section II-B)::

        C1  conv 5x5, 6 maps 28x28        6 * (5*5 + 1)            =    156
        S2  subsample 2x2, 6 maps 14x14   6 * (1 coeff + 1 bias)   =     12
        C3  conv 5x5, 16 maps 10x10       60 kernels (Table I) * 25 + 16 biases = 1,516
        S4  subsample 2x2, 16 maps 5x5    16 * 2                   =     32
        C5  conv 5x5, 120 maps 1x1        120 * (16*5*5 + 1)       = 48,120
        F6  fully connected, 84 units     84 * (120 + 1)           = 10,164
                                                           total  = 60,000
        OUTPUT  RBF, 10 units             10 * 84 prototypes (fixed; 840 more if trainable)

    Every layer up to F6 is followed by the scaled tanh 1.7159 tanh(2x/3). Weights start uniform in
    +-2.4 / fan-in, as in the paper. The logits are minus the RBF distances, so cross-entropy on them is
    the paper's own criterion (less its constant "rubbish class" term). Those logits span hundreds of
    units, so train with a smaller learning rate than usual: on the digits SGD with momentum works at
    lr 0.002-0.01 and diverges at 0.05.
    """

    def __init__(self, num_classes: int = 10, in_chans: int = 1, input_size=(32, 32),
                 trainable_prototypes: bool = False) -> None:
        super().__init__()
        h, w = _check_size("lenet5(classic=True)", input_size, 16)
        ph, pw = max(32 - h, 0), max(32 - w, 0)
        self.pad = nn.ZeroPad2d((pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)) if ph or pw else nn.Identity()
        self.features = nn.Sequential(OrderedDict(
            c1=nn.Conv2d(in_chans, 6, 5), act1=ScaledTanh(),
            s2=Subsampling(6), act2=ScaledTanh(),
            c3=PartialConv2d(6, C3_TABLE, 5), act3=ScaledTanh(),
            s4=Subsampling(16), act4=ScaledTanh(),
            c5=nn.Conv2d(16, 120, 5), act5=ScaledTanh(),
        ))  # fmt: skip
        # C1, C3, C5 are valid 5x5 convs (-4 each); S2, S4 halve.
        fh = ((h + ph - 4) // 2 - 4) // 2 - 4
        fw = ((w + pw - 4) // 2 - 4) // 2 - 4
        self.f6 = nn.Linear(120 * fh * fw, 84)
        self.act6 = ScaledTanh()
        self.rbf = RBFOutput(84, num_classes, trainable=trainable_prototypes)
        self._init_lecun()
        mean, std = _gray_norm(in_chans)
        self.info = ModelInfo("lenet5", "lenet", (in_chans, h, w), num_classes, mean, std, "rbf", min_size=16)

    def _init_lecun(self) -> None:
        # Uniform in +-2.4/F_i keeps the initial weighted sums inside the tanh's linear-ish range.
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
            elif isinstance(m, Subsampling):
                fan_in = m.kernel_size**2
            elif isinstance(m, PartialConv2d):
                # Each C3 map has its own fan-in: (3, 4 or 6 maps) * 5 * 5.
                fan = torch.bincount(m.out_idx, minlength=m.out_ch)[m.out_idx] * m.kernel_size**2
                bound = (2.4 / fan).view(-1, 1, 1)
                with torch.no_grad():
                    m.weight.uniform_(-1, 1).mul_(bound)
                nn.init.zeros_(m.bias)
                continue
            else:
                continue
            nn.init.uniform_(m.weight, -2.4 / fan_in, 2.4 / fan_in)
            nn.init.zeros_(m.bias)

    def _make_classifier(self, num_classes: int) -> RBFOutput:
        return RBFOutput(self.rbf.in_features, num_classes, trainable=self.rbf.trainable)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(self.pad(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.act6(self.f6(torch.flatten(x, 1)))
        return x if pre_logits else self.rbf(x)


@register_model("lenet", (1, 28, 28))
def lenet1(num_classes: int = 10, in_chans: int = 1, input_size=(28, 28), act: str = "tanh",
           pool: str = "avg") -> LeNet1:
    """LeNet-1: two small conv layers (4 and 12 maps) with average pooling and one output layer."""
    return LeNet1(num_classes, in_chans, input_size, act=act, pool=pool)


# LeNet-5's recipe, tuned for time to accuracy on small data (docs/recipe.md has the measurements, made on
# 5,000 real MNIST digits as 28 px PNGs and on scikit-learn's digits: 3 seeds, 30 epochs each).
LENET5_RECIPE = {"optimizer": "adamw", "lr": 6e-3, "scheduler": "linear", "label_smoothing": 0.1}


@register_model("lenet", (1, 32, 32), recipe=LENET5_RECIPE)
def lenet5(num_classes: int = 10, in_chans: int = 1, input_size=(32, 32), act: str = "relu", pool: str = "max",
           classic: bool = False, trainable_prototypes: bool = False) -> nn.Module:
    """LeNet-5 (ReLU and max-pool by default; ``classic=True`` for the 1998 paper's network); 32x32 input."""
    if classic:
        return LeNet5Classic(num_classes, in_chans, input_size, trainable_prototypes=trainable_prototypes)
    if trainable_prototypes:
        raise ModelError("trainable_prototypes only applies to lenet5(classic=True)")
    return LeNet5(num_classes, in_chans, input_size, act=act, pool=pool)
