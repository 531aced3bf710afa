"""Data-dependent initialisation: a model that sets weights from its training images before the first step.

A model opts in with a method ``init_from_data(images)`` (airbench94's patch-whitening layer, whose
filters are the eigenvectors of the training patches' covariance). The engine calls it once, for a new
run only: a resumed run's checkpoint holds the weights, and a fine-tuned model keeps its source's.
"""

from __future__ import annotations

from torch import nn

from ..data import DatasetSplits, Normalize
from ..data.auto_augment import sample_images

INIT_IMAGES = 5000  # training images handed to the model (airbench estimates its whitening from 5,000)
INIT_FLOATS = 2**24  # and at most 64 MB of them: 5,000 CIFAR images, 111 at 224 px


def init_from_data(model: nn.Module, data: DatasetSplits, seed: int, new_run: bool = True) -> nn.Module:
    """``model`` after its ``init_from_data`` (if it has one) with seeded training images, normalised as the
    loader feeds them (``N x C x H x W`` floats); unchanged when ``new_run`` is false."""
    init = getattr(model, "init_from_data", None)
    if new_run and callable(init):
        c, h, w = data.image_shape
        images, _ = sample_images(data.train, min(INIT_IMAGES, max(1, INIT_FLOATS // (c * h * w))), seed)
        init(Normalize(data.mean, data.std)(images))
    return model
