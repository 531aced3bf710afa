"""A labelled grid of augmented training images: what the model will actually see."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from .augment import Augment
from .base import DatasetSplits
from .loader import make_loader
from .transforms import Normalize


def augmented_batch(data: DatasetSplits, augment: Augment | str | None, n: int = 32, seed: int = 0,
                    split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """``n`` shuffled images of ``split`` as the training loader yields them, in [0, 1] pixels, and labels."""
    aug = augment if isinstance(augment, Augment) else Augment.from_spec(augment)
    norm = Normalize(data.mean, data.std)
    part = data.split(split)
    loader = make_loader(part, min(n, max(len(part), 1)), norm, shuffle=True, augment=aug, seed=seed)
    x, y = next(iter(loader))
    return norm.inverse(x).clamp(0, 1), y


def save_batch_grid(images: torch.Tensor, labels: torch.Tensor, classes: list[str], path: str | Path,
                    title: str | None = None) -> Path:  # fmt: skip
    """Save images (``N x C x H x W`` in [0, 1]) as a grid, each titled with its class name."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from ..io import atomic_write

    n = len(images)
    cols = min(8, n) or 1
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.75 * rows + (0.4 if title else 0)), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= n:
            continue
        img = images[k].permute(1, 2, 0).cpu().numpy()
        if img.shape[2] == 1:
            ax.imshow(img[:, :, 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        else:
            ax.imshow(img, interpolation="nearest")
        name = classes[int(labels[k])]
        ax.set_title(name if len(name) <= 14 else name[:13] + "…", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    # Atomic: an interrupted run leaves the previous grid, never half a file. The temporary file has no
    # image suffix, so the format is named from the real one.
    atomic_write(path, lambda p: fig.savefig(p, dpi=120, format=path.suffix.lstrip(".").lower() or "png"))
    plt.close(fig)
    return path
