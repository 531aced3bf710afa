"""The views test-time augmentation averages over: mirror images, one-pixel shifts, AlexNet's ten crops.

They live in the data layer (not in :mod:`cnnkit.evaluate`) because two layers use them: ``cnnkit eval``
(:mod:`cnnkit.evaluate.tta`) and the final test score of ``cnnkit train --tta`` (:mod:`cnnkit.engine`).
Every view of a batch has the batch's shape; ``flip`` and ``flip+shift`` work on uint8 and on
normalised float batches alike (a mirror image and a reflected shift commute with per-channel
normalisation), ``crops`` on uint8 batches.
"""

from __future__ import annotations

import torch

from ..config import TTA_MODES
from ..errors import ConfigError
from .transforms import resize_uint8

__all__ = ["CROP_SCALE", "TTA_MODES", "shift", "tta_views", "view_count"]  # TTA_MODES: config's, named here too
CROP_SCALE = 256 / 224  # AlexNet's ratio of the resized image to the crop


def shift(images: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``images`` moved ``dy`` pixels down and ``dx`` right (|d| < side), the uncovered border reflected.

    Equal to ``F.pad(x, (1,) * 4, mode="reflect")`` cropped at an offset (airbench's translated views), but
    written as an index gather because ``F.pad``'s reflect mode has no uint8 kernel and ``cnnkit eval``
    passes uint8 images.
    """
    out = images
    for dim, d in ((-2, dy), (-1, dx)):
        if d:
            n = images.shape[dim]
            i = torch.arange(n, device=images.device) - d
            i = torch.where(i < 0, -i, torch.where(i >= n, 2 * (n - 1) - i, i))  # reflect, without the edge
            out = out.index_select(dim, i)
    return out


def tta_views(images: torch.Tensor, mode: str | None, crop_scale: float = CROP_SCALE) -> list[torch.Tensor]:
    """The views of a batch ``N x C x H x W`` that TTA averages over (each the same shape).

    * ``None`` / ``"none"``: the images themselves (one view);
    * ``"flip"``: the images and their left-right mirror images (two views);
    * ``"flip+shift"``: those two, and both again shifted one pixel down-right and one pixel up-left
      (six views; airbench's test-time augmentation, which weights the unshifted pair double);
    * ``"crops"``: the ten AlexNet crops (uint8 only): the images are resized ``crop_scale`` times larger,
      then cut back to ``H x W`` at the four corners and the centre, plus the mirror image of each.
    """
    if mode is None or mode == "none":
        return [images]
    if mode == "flip":
        return [images, images.flip(-1)]
    if mode == "flip+shift":
        moved = [images, shift(images, 1, 1), shift(images, -1, -1)]
        return [v for m in moved for v in (m, m.flip(-1))]
    if mode == "crops":
        h, w = images.shape[-2:]
        bh, bw = max(h + 1, round(h * crop_scale)), max(w + 1, round(w * crop_scale))
        big = resize_uint8(images, (bh, bw))
        ch, cw = (bh - h) // 2, (bw - w) // 2
        tops = [(0, 0), (0, bw - w), (bh - h, 0), (bh - h, bw - w), (ch, cw)]  # 4 corners, centre
        crops = [big[..., y : y + h, x : x + w] for y, x in tops]
        return crops + [c.flip(-1) for c in crops]
    raise ConfigError(f"unknown test-time augmentation {mode!r}", hint="use " + " or ".join(TTA_MODES))


def view_count(mode: str | None) -> int:
    """How many forward passes per image a TTA mode costs."""
    return {None: 1, "none": 1, "flip": 2, "flip+shift": 6, "crops": 10}[mode]
