"""What a spatial transformer does to its inputs: each image beside its resampled version.

The localisation network reads the normalised image; its affine map is then applied to the [0, 1]
pixels with the same sampler, so the figure shows exactly what the classifier behind it receives.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelError
from ._common import PixelModel, inner, predict_proba, to_pixels, top_k


def find_stn(model: nn.Module) -> nn.Module:
    """The (first) spatial transformer inside ``model``; :class:`ModelError` when there is none."""
    from ..models.stn import SpatialTransformer

    for m in inner(model).modules():
        if isinstance(m, SpatialTransformer):
            return m
    name = getattr(getattr(inner(model), "info", None), "name", type(inner(model)).__name__)
    raise ModelError(f"model {name!r} has no spatial transformer to show",
                     hint="train one with `cnnkit train --model stn_lenet5`, or pick another --method")  # fmt: skip


@torch.no_grad()
def stn_transform(model: PixelModel, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(transformed [0, 1] images, N x 2 x 3 affine maps)`` of the transformer in ``model``."""
    stn = find_stn(model)
    x = to_pixels(images)
    theta = stn.theta((x - model.mean) / model.std)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False), theta


@dataclass
class STNView:
    """Images, what the transformer made of them, predictions and where the figure went."""

    images: torch.Tensor
    transformed: torch.Tensor
    theta: torch.Tensor
    predicted: list[str]
    top: list[tuple[str, float]]  # top-5 of the first image
    path: Path


def plot_stn(
    images: torch.Tensor, transformed: torch.Tensor, titles: list[str], output: str | Path, title: str = ""
) -> Path:
    """Inputs (top row) above their transformed versions (bottom row), ``titles`` under each pair."""
    import matplotlib.pyplot as plt

    from .plots import _save, show_image

    n = len(images)
    fig, axes = plt.subplots(2, n, figsize=(1.3 * n + 0.6, 3.2), squeeze=False)
    for i in range(n):
        show_image(axes[0, i], images[i].cpu())
        show_image(axes[1, i], transformed[i].cpu())
        axes[1, i].set_xlabel(titles[i], fontsize=9)
    axes[0, 0].set_ylabel("input")
    axes[1, 0].set_ylabel("transformed")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, output)


def _view(run, model: PixelModel, x: torch.Tensor, output: str | Path, title: str) -> STNView:
    out, theta = stn_transform(model, x)
    probs = predict_proba(model, x)
    names = [run.classes[int(i)] for i in probs.argmax(1)]
    path = plot_stn(x, out, [f"pred {c}" for c in names], output, title)
    return STNView(x.cpu(), out.cpu(), theta.cpu(), names, top_k(probs[0].cpu(), run.classes), path)


def explain_stn(run_dir: str | Path, image: str | Path, output: str | Path, device: str = "auto") -> STNView:
    """``cnnkit explain --method stn``: one image file and what the run's spatial transformer makes of it."""
    from ._common import load_image
    from .commands import _load, _size

    run, model = _load(run_dir, device)
    find_stn(model)  # before reading the image: the model is the likelier mistake
    c, h, w = _size(run)
    x = load_image(image, c, (h, w)).to(model.mean.device)
    return _view(run, model, x, output, f"spatial transformer of {Path(run_dir).name}")


def stn_figure(
    run_dir: str | Path, output: str | Path, n: int = 12, split: str = "test", device: str = "auto"
) -> STNView:
    """The first ``n`` images of the run's ``split`` above what its spatial transformer makes of them."""
    from ..evaluate.runner import run_data
    from .commands import _load

    run, model = _load(run_dir, device)
    find_stn(model)
    x = to_pixels(run_data(run).split(split).images[:n]).to(model.mean.device)
    return _view(run, model, x, output, f"spatial transformer of {Path(run_dir).name} ({split} images)")
