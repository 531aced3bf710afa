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
from .weights import load_pretrained, load_weights, pretrained_weights, save_weights

__all__ = [
    "Classifier",
    "ModelInfo",
    "count_params",
    "create_model",
    "get_submodule",
    "list_models",
    "load_pretrained",
    "load_weights",
    "model_entry",
    "model_info",
    "pretrained_weights",
    "register_model",
    "reset_classifier",
    "save_weights",
]
