"""Models: a registry of every architecture in the lectures (see ``cnnkit models``)."""

from .base import Classifier, reset_classifier
from .registry import (
    ModelInfo,
    count_params,
    create_model,
    get_submodule,
    list_models,
    model_entry,
    model_info,
    register_model,
)

__all__ = [
    "Classifier",
    "ModelInfo",
    "count_params",
    "create_model",
    "get_submodule",
    "list_models",
    "model_entry",
    "model_info",
    "register_model",
    "reset_classifier",
]
