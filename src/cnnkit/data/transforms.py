"""Tensor-level image preparation shared by training, evaluation and prediction."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def resize_uint8(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a uint8 ``N x C x H x W`` batch (antialiased bilinear), returning uint8."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    x = F.interpolate(images.float(), size=size, mode="bilinear", align_corners=False, antialias=True)
    return x.round_().clamp_(0, 255).to(torch.uint8)


def channel_stats(images: torch.Tensor, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images, in the [0, 1] scale.

    Exact and fast: a 256-bin histogram per channel (``bincount`` straight on the uint8 values, in
    chunks) gives the sums of ``x`` and ``x**2`` without converting any pixel to float.
    """
    c = images.shape[1]
    hist = torch.zeros(c, 256, dtype=torch.float64)
    for i in range(0, len(images), chunk):
        part = images[i : i + chunk].cpu()
        for ch in range(c):
            hist[ch] += torch.bincount(part[:, ch].reshape(-1), minlength=256).double()
    v = torch.arange(256, dtype=torch.float64) / 255.0
    n = hist.sum(1).clamp_min(1)
    mean = (hist * v).sum(1) / n
    std = ((hist * v * v).sum(1) / n - mean**2).clamp_min(1e-12).sqrt()
    return tuple(round(float(x), 6) for x in mean), tuple(round(max(float(x), 1e-3), 6) for x in std)


class Normalize:
    """uint8 or [0, 1] float batch -> float batch standardised with per-channel mean/std."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = x.float().div_(255.0)
        mean, std = self.mean.to(x.device), self.std.to(x.device)
        return (x - mean) / std

    def inplace(self, x: torch.Tensor) -> torch.Tensor:
        """Standardise a float batch in [0, 1] in place (the loaders' hot path: no new tensors)."""
        if self.mean.device != x.device:
            self.mean, self.std = self.mean.to(x.device), self.std.to(x.device)
        return x.sub_(self.mean).div_(self.std)

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        """Back to [0, 1] pixels (for showing images)."""
        return x * self.std.to(x.device) + self.mean.to(x.device)
