"""cnnkit: image classification with convolutional neural networks.

The public Python API; the ``cnnkit`` command line calls exactly these functions.
"""

import os

from ._version import __version__  # noqa: F401
from .analyze import summary
from .config import TrainConfig
from .data import list_datasets, load_dataset
from .engine import TrainResult, train
from .errors import CnnkitError
from .evaluate import evaluate_run as evaluate
from .evaluate import predict_files as _predict_files
from .models import count_params, create_model, list_models
from .run import LoadedRun, load_run
from .transfer import extract_features, finetune


def predict(run_dir, paths, topk: int = 5):
    """Top-k predictions of a saved run for image files or folders (see ``cnnkit predict``)."""
    one = isinstance(paths, (str, os.PathLike))  # a single path, not an iterable of characters or parts
    return _predict_files(load_run(run_dir), [paths] if one else list(paths), topk=topk)


__all__ = [
    "CnnkitError",
    "LoadedRun",
    "TrainConfig",
    "TrainResult",
    "count_params",
    "create_model",
    "evaluate",
    "extract_features",
    "finetune",
    "list_datasets",
    "list_models",
    "load_dataset",
    "load_run",
    "predict",
    "summary",
    "train",
]
