"""cnnkit: image classification with convolutional neural networks.

The public Python API; the ``cnnkit`` command line calls exactly these functions.
"""

__version__ = "0.1.0"

from .analyze import summary  # noqa: E402
from .config import TrainConfig  # noqa: E402
from .data import list_datasets, load_dataset  # noqa: E402
from .engine import TrainResult, train  # noqa: E402
from .errors import CnnkitError  # noqa: E402
from .evaluate import evaluate_run as evaluate  # noqa: E402
from .evaluate import predict_files as _predict_files  # noqa: E402
from .models import count_params, create_model, list_models  # noqa: E402
from .run import LoadedRun, load_run  # noqa: E402
from .transfer import extract_features, finetune  # noqa: E402

import os  # noqa: E402


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
