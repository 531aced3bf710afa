"""Evaluation: metrics, prediction (TTA, ensembles), reports, plots and run comparison."""

from ..data.images import read_image
from .compare import compare_runs
from .complexity import count_macs, layer_table, model_cost
from .predict import Prediction, collect_images, predict_files, predict_images
from .result import EvalResult
from .runner import evaluate_run, predict_logits, run_data
from .tta import ensemble_probs, predict_probs, tta_views

__all__ = [
    "EvalResult",
    "Prediction",
    "collect_images",
    "compare_runs",
    "count_macs",
    "ensemble_probs",
    "evaluate_run",
    "layer_table",
    "model_cost",
    "predict_files",
    "predict_images",
    "predict_logits",
    "predict_probs",
    "read_image",
    "run_data",
    "tta_views",
]
