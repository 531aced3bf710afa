"""airbench94: Keller Jordan's fast CIFAR-10 network (airbench, 2024), written for cnnkit's registry.

A small VGG-style stack, every part chosen for time to 94% on CIFAR-10:

* a **patch-whitening** first layer: a 2x2 convolution whose filters are the eigenvectors of the
  training images' 2x2-patch covariance, each divided by the square root of its eigenvalue (and the
  negated copies, so the GELU after it keeps both signs). Its responses are decorrelated with unit
  variance from the first step; the filters stay frozen, only their bias trains. It needs the data, so
  the engine calls :meth:`AirbenchNet.init_from_data` once for a new run (never on resume: the
  checkpoint holds the weights);
* three blocks ``conv3x3 -> max-pool 2 -> BN -> GELU -> conv3x3 -> BN -> GELU`` of widths 64/256/256,
  the batch norms with a fixed scale of 1 (only their shift trains) and momentum 0.4;
* each convolution starts as a partial identity (Dirac kernels on the first ``in_channels`` filters);
* global max pooling and one linear layer without bias, its logits scaled by 1/9.

The recipe (``cnnkit train --model airbench94``) is airbench's, translated to cnnkit's options: batch
1024, 10 epochs, Nesterov SGD, two warmup epochs then a linear decay to 0, label smoothing 0.2,
flip + shift test-time augmentation. Airbench sums the loss over the batch with momentum 0.85; cnnkit
averages it with momentum 0.9, so lr and weight decay are converted to the same step per image:
lr 11.5 / (1024 (1 + 1 / 0.15)) x 1024 x (0.1 / 0.15) = 1.0, weight decay 0.0153 / 11.5 = 1.33e-3.
Left out: airbench's 64x learning rate for the batch-norm shifts, its weight averaging (lookahead) and
the freezing of the whitening bias after 3 epochs. Pass ``--augment translate=2,flip`` for airbench's
augmentation (``--augment auto`` picks 4 px shifts, flips and colour jitter for CIFAR-like photos).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelError
from .base import Classifier
from .registry import ModelInfo, register_model

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
WHITEN_EPS = 5e-4  # added to the eigenvalues: the flattest directions are not amplified without bound
WHITEN_IMAGES = 5000  # training images whose patches estimate the covariance (airbench's count)
RECIPE = {
    "epochs": 10, "batch_size": 1024, "optimizer": "sgd", "lr": 1.0, "weight_decay": 1.33e-3,
    "scheduler": "linear", "warmup_epochs": 2.0, "label_smoothing": 0.2, "tta": "flip+shift",
}  # fmt: skip


class _BatchNorm(nn.BatchNorm2d):
    """Batch norm with the scale fixed at 1 (a following conv can scale) and a short memory (momentum 0.4)."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels, eps=1e-12, momentum=0.4)
        self.weight.requires_grad_(False)


def _conv(c_in: int, c_out: int) -> nn.Conv2d:
    conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
    with torch.no_grad():  # partial identity: the first c_in filters pass their input through
        nn.init.dirac_(conv.weight[: min(c_in, c_out)])
    return conv


class ConvGroup(nn.Sequential):
    """``conv3x3 -> max-pool 2 -> BN -> GELU -> conv3x3 -> BN -> GELU``: halves the side, ``c_in`` -> ``c_out``."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        # Assigned in the order they run (nn.Sequential calls its children in that order).
        self.conv1, self.pool = _conv(c_in, c_out), nn.MaxPool2d(2)
        self.norm1, self.act1 = _BatchNorm(c_out), nn.GELU()
        self.conv2, self.norm2, self.act2 = _conv(c_out, c_out), _BatchNorm(c_out), nn.GELU()


class AirbenchNet(Classifier):
    """airbench94's network; ``widths`` of the three blocks (64, 256, 256), ``logit_scale`` 1/9."""

    def __init__(self, num_classes: int = 10, in_chans: int = 3, input_size: tuple[int, int] = (32, 32),
                 widths: Sequence[int] = (64, 256, 256), whiten_kernel: int = 2, logit_scale: float = 1 / 9) -> None:  # fmt: skip
        super().__init__()
        if len(widths) != 3 or min(widths) < 1:
            raise ModelError(f"airbench94 widths must be three positive numbers, got {list(widths)}")
        k = whiten_kernel
        self.whiten = nn.Conv2d(in_chans, 2 * in_chans * k * k, k, bias=True)
        self.whiten.weight.requires_grad_(False)  # set from the data (init_from_data), then kept
        self.act = nn.GELU()
        c = self.whiten.out_channels
        self.blocks = nn.Sequential(*(ConvGroup(a, b) for a, b in zip((c, *widths[:2]), widths, strict=True)))
        self.head = nn.Linear(widths[-1], num_classes, bias=False)
        self.logit_scale = float(logit_scale)
        mean, std = (CIFAR_MEAN, CIFAR_STD) if in_chans == 3 else ((0.5,) * in_chans, (0.5,) * in_chans)
        # Smallest side: the whitening conv takes k - 1 pixels, then three 2x2 poolings need 8 pixels.
        self.info = ModelInfo("airbench94", "vgg", (in_chans, *input_size), num_classes, mean, std, "head",
                              min_size=8 + k - 1)  # fmt: skip

    @torch.no_grad()
    def init_from_data(self, images: torch.Tensor, eps: float = WHITEN_EPS) -> None:
        """Set the whitening filters from training images (normalised floats ``N x C x H x W``, as the model sees them).

        With ``C`` the uncentred covariance of the ``k x k`` patches and ``C = V diag(l) V^T``, the
        filters are the rows of ``diag(l + eps)^-1/2 V^T`` and their negatives: the responses of the
        first half to the patches have covariance ``diag(l / (l + eps))``, the identity up to ``eps``.
        """
        w = self.whiten.weight
        c, k = w.shape[1], w.shape[2]
        if images.ndim != 4 or images.shape[1] != c:
            raise ModelError(f"init_from_data needs N x {c} x H x W images, got {tuple(images.shape)}")
        cov = torch.zeros(c * k * k, c * k * k, dtype=torch.float64)
        n = 0
        for chunk in images[:WHITEN_IMAGES].split(256):  # ~3M floats of patches at a time (CIFAR), not 60M
            # Every k x k patch as a row (F.unfold orders each as channel, row, column, like the conv's weight).
            p = F.unfold(chunk.float().cpu(), k).transpose(1, 2).reshape(-1, c * k * k).double()
            cov += p.T @ p
            n += len(p)
        # eigh, not scikit-learn's PCA(whiten=True): PCA centres the patches, while these filters must whiten
        # the patches as the conv sees them (uncentred, as airbench does; the inputs are normalised anyway).
        eigvals, eigvecs = torch.linalg.eigh(cov / max(n, 1))  # symmetric: real, ascending eigenvalues
        filters = (eigvecs.T / (eigvals.clamp_min(0) + eps).sqrt()[:, None]).flip(0)  # strongest first
        filters = filters.reshape(c * k * k, c, k, k).to(w)
        w.copy_(torch.cat([filters, -filters]))
        self.whiten.bias.zero_()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.act(self.whiten(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.amax(x, dim=(2, 3))  # global max pooling
        return x if pre_logits else self.head(x) * self.logit_scale


@register_model("vgg", (3, 32, 32), recipe=RECIPE)
def airbench94(num_classes: int = 10, in_chans: int = 3, input_size=(32, 32), widths: list = (64, 256, 256),
               logit_scale: float = 1 / 9) -> AirbenchNet:  # fmt: skip
    """airbench94 (Jordan 2024): patch-whitening conv, three VGG-style blocks; the fast CIFAR-10 recipe."""
    return AirbenchNet(num_classes, in_chans, input_size, widths=widths, logit_scale=logit_scale)
