"""Test images for the lectures' invariance demos: affine distortions and strings of digits.

Everything takes and returns float images in [0, 1] (``N x C x H x W``) on a black background (the
digits' own), and draws its randomness from a seeded ``torch.Generator`` so a figure or a benchmark
is the same on every run.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def affine(
    images: torch.Tensor,
    rotate: torch.Tensor | float = 0.0,
    scale: torch.Tensor | float = 1.0,
    shift: tuple[torch.Tensor | float, torch.Tensor | float] = (0.0, 0.0),
) -> torch.Tensor:
    """Rotate (degrees, anticlockwise), scale and shift (pixels, x then y) each image about its centre.

    Parameters are scalars or one value per image. ``grid_sample`` resamples bilinearly; pixels that
    come from outside the image are background (0).
    """
    n, _, h, w = images.shape

    def per_image(v: torch.Tensor | float) -> torch.Tensor:
        return torch.as_tensor(v, dtype=torch.float32).expand(n).to(images.device)

    a, s = per_image(rotate) * math.pi / 180, per_image(scale)
    dx, dy = per_image(shift[0]) * 2 / w, per_image(shift[1]) * 2 / h
    cos, sin = torch.cos(a) / s, torch.sin(a) / s
    # theta maps output coordinates to input ones: the inverse of "scale, rotate, then shift". The
    # aspect factors keep the rotation a rotation on non-square images (coordinates are in [-1, 1]).
    theta = torch.stack([
        torch.stack([cos, -sin * h / w, -(cos * dx - sin * h / w * dy)], 1),
        torch.stack([sin * w / h, cos, -(sin * w / h * dx + cos * dy)], 1),
    ], 1)  # fmt: skip
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def random_affine(
    images: torch.Tensor,
    max_rotate: float = 45.0,
    scale: tuple[float, float] = (0.7, 1.2),
    max_shift: float = 0.0,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image under its own random rotation, scale and shift; returns the images and ``N x 4`` parameters.

    Rotation is uniform in +-``max_rotate`` degrees, scale uniform in ``scale``, shift uniform in
    +-``max_shift`` pixels per axis. The parameters (degrees, scale, dx, dy) come back for plotting.
    """
    g = torch.Generator().manual_seed(seed)
    n = len(images)
    rot = (torch.rand(n, generator=g) * 2 - 1) * max_rotate
    sc = scale[0] + torch.rand(n, generator=g) * (scale[1] - scale[0])
    dx, dy = ((torch.rand(n, generator=g) * 2 - 1) * max_shift for _ in range(2))
    return affine(images, rot, sc, (dx, dy)), torch.stack([rot, sc, dx, dy], 1)


def pad_to(images: torch.Tensor, size: int) -> torch.Tensor:
    """Images centred on a larger ``size x size`` black canvas."""
    h, w = images.shape[-2:]
    top, left = (size - h) // 2, (size - w) // 2
    return F.pad(images, (left, size - w - left, top, size - h - top))


def add_noise(images: torch.Tensor, sigma: float, seed: int = 0) -> torch.Tensor:
    """Gaussian noise of standard deviation ``sigma`` (in [0, 1] units), clipped to [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(images.shape, generator=g).to(images.device)
    return (images + sigma * noise).clamp(0, 1)


def digit_string(digits: torch.Tensor, pitch: int) -> torch.Tensor:
    """Digits (``k x C x H x W``) side by side, ``pitch`` pixels apart, as one ``C x H x W'`` image.

    ``pitch`` equal to the digit width puts them edge to edge; smaller makes them touch and overlap
    (overlapping strokes combine with ``max``, like ink on paper).
    """
    k, c, h, w = digits.shape
    out = digits.new_zeros(c, h, pitch * (k - 1) + w)
    for i, d in enumerate(digits):
        window = out[:, :, i * pitch : i * pitch + w]
        torch.maximum(window, d, out=window)
    return out


def digit_strings(
    images: torch.Tensor,
    labels: torch.Tensor,
    n: int,
    length: int = 3,
    pitch: int | None = None,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` strings of ``length`` randomly drawn digits: ``n x C x H x W'`` images and ``n x length`` labels."""
    g = torch.Generator().manual_seed(seed)
    pick = torch.randint(0, len(images), (n, length), generator=g)
    pitch = images.shape[-1] if pitch is None else pitch
    strips = torch.stack([digit_string(images[p], pitch) for p in pick])
    return strips, labels[pick]
