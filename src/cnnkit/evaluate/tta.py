"""Test-time augmentation and ensembles: average the class probabilities of several views or models.

AlexNet (Krizhevsky et al. 2012) predicted each test image from ten 224x224 crops of the 256x256
image (four corners and the centre, and their mirror images) and averaged the softmax outputs;
it then averaged the outputs of several networks trained separately. ZFNet, VGG, GoogLeNet and
ResNet did the same. Both cost one forward pass per view per model, and both average
*probabilities* (not logits), which is what this module does.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..data import resize_uint8
from ..data.views import CROP_SCALE, TTA_MODES, tta_views, view_count  # noqa: F401 (this module's API too)
from ..errors import CheckpointError, ConfigError
from ..run import LoadedRun


def predict_probs(
    run: LoadedRun, images: torch.Tensor, tta: str | None = None, chunk: int = 1024, batch_size: int = 256
) -> torch.Tensor:
    """Class probabilities (float64 ``N x K``) of uint8 images, averaged over the TTA views.

    Images of another size than the model's input are resized first. Works in chunks of images so
    ten crops of a large test set never sit in memory at once.
    """
    from .runner import predict_logits

    c, h, w = run.meta.input_size
    if images.shape[1] != c:
        raise ConfigError(
            f"images have {images.shape[1]} channels but run {run.path.name!r} expects {c}",
            hint="ensemble runs trained on the same kind of images (grey or colour)",
        )
    out = torch.zeros(len(images), len(run.classes), dtype=torch.float64)
    for s in range(0, len(images), chunk):
        x = resize_uint8(images[s : s + chunk], (h, w))
        views = tta_views(x, tta)
        for v in views:
            out[s : s + chunk] += predict_logits(run, v.contiguous(), batch_size).double().softmax(1)
        out[s : s + chunk] /= len(views)
    return out


def check_ensemble(runs: Sequence[LoadedRun]) -> None:
    """Runs of an ensemble must predict the same classes in the same order."""
    first = runs[0]
    for r in runs[1:]:
        if r.classes != first.classes:
            diff = next((i for i, (a, b) in enumerate(zip(first.classes, r.classes, strict=False)) if a != b), None)
            where = f" (first difference at index {diff}: {first.classes[diff]!r} vs {r.classes[diff]!r})" if diff is not None else ""
            raise CheckpointError(
                f"run {str(r.path)!r} predicts {len(r.classes)} classes, run {str(first.path)!r} "
                f"{len(first.classes)}; their class lists differ{where}",
                hint="an ensemble averages probabilities class by class: use runs trained on the same classes",
            )
        # Checked here, before any prediction, rather than when the first batch reaches the member.
        if r.meta.channels != first.meta.channels:
            raise CheckpointError(
                f"run {str(r.path)!r} takes {r.meta.channels}-channel images, run {str(first.path)!r} "
                f"{first.meta.channels}-channel ones",
                hint="ensemble runs trained on the same kind of images (grey or colour)",
            )


def ensemble_probs(runs: Sequence[LoadedRun], images: torch.Tensor, tta: str | None = None) -> torch.Tensor:
    """Mean of the (TTA-averaged) class probabilities of several runs."""
    check_ensemble(runs)
    return torch.stack([predict_probs(r, images, tta) for r in runs]).mean(0)
