"""cnnkit: image classification with convolutional neural networks.

The public Python API; the ``cnnkit`` command line calls exactly these functions.
"""

import os
from collections.abc import Iterable, Mapping
from typing import Any

from ._run_methods import provide as _provide
from ._version import __version__  # noqa: F401
from .analyze import summary
from .analyze.convolutionalize import convolutionalize
from .config import TrainConfig
from .data import list_datasets, load_dataset
from .engine import LRFindResult, TrainResult, lr_find, train
from .engine.bench import bench
from .errors import CnnkitError, DataError
from .evaluate import EvalResult, Prediction
from .evaluate import evaluate_run as evaluate
from .models import count_params, create_model, list_models
from .run import LoadedRun, load_run
from .transfer import extract_features, finetune


def predict(
    run: str | os.PathLike | LoadedRun, images: Any, topk: int = 5, tta: str | None = None
) -> list[Prediction]:
    """Top-k predictions of a run (a run folder, or one loaded with :func:`load_run`), one per image.

    ``images``: one image or a list of them, each a file path, a folder (its images, recursively,
    sorted), a PIL image, a NumPy array (``H x W`` or ``H x W x C``; ``N x H x W x C`` for several) or a
    tensor (``C x H x W``; ``N x C x H x W`` for several). Every image is converted as training and
    ``cnnkit predict`` convert files. An image that cannot be used gets an ``error`` instead of classes.
    """
    from .evaluate import collect_images, predict_files, predict_images

    loaded = run if isinstance(run, LoadedRun) else load_run(run)
    loaded.model.eval()  # a run changed in a notebook may be in training mode: predict as load_run would
    items = _image_list(images)
    if all(isinstance(im, (str, os.PathLike)) for im in items):  # files and folders: as `cnnkit predict`
        return predict_files(loaded, items, topk=topk, tta=tta)
    expanded: list[Any] = []
    names: list[str] = []  # a path, or the image's place in what the user passed: <image 3>
    for i, im in enumerate(items):
        if isinstance(im, (str, os.PathLike)) and os.path.isdir(im):
            found = collect_images([im])
            if not found:
                raise DataError(f"no images found in {str(im)}", hint="pass image files or folders of images")
            expanded += found
            names += map(str, found)
        else:
            expanded.append(im)
            names.append(str(im) if isinstance(im, (str, os.PathLike)) else f"<image {i}>")
    return predict_images(loaded, expanded, topk=topk, tta=tta, names=names)


def _image_list(images: Any) -> list[Any]:
    """One image or many, as a list (a 4-d array or tensor is a batch; a 2-d or 3-d one is one image)."""
    import numpy as np
    import torch
    from PIL import Image

    if isinstance(images, (np.ndarray, torch.Tensor)):
        return list(images) if images.ndim == 4 else [images]
    if isinstance(images, (str, os.PathLike, Image.Image, bytes, Mapping)) or not isinstance(images, Iterable):
        return [images]  # one image; or no image at all, and then its prediction says why
    return list(images)


def _explain_run(run: LoadedRun, image: Any, **kw: Any) -> Any:
    from .explain.notebook import explain_run  # matplotlib and Captum load only when asked for

    return explain_run(run, image, **kw)


# run.predict / run.evaluate / run.explain (cnnkit.run cannot import these layers above it).
_provide("predict", predict)
_provide("evaluate", evaluate)
_provide("explain", _explain_run)


__all__ = [
    "CnnkitError",
    "EvalResult",
    "LRFindResult",
    "LoadedRun",
    "Prediction",
    "TrainConfig",
    "TrainResult",
    "bench",
    "convolutionalize",
    "count_params",
    "create_model",
    "evaluate",
    "extract_features",
    "finetune",
    "list_datasets",
    "list_models",
    "load_dataset",
    "load_run",
    "lr_find",
    "predict",
    "summary",
    "train",
]
