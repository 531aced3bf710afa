"""Evaluation: metrics, prediction, reports and plots."""

from .predict import Prediction, collect_images, predict_files, read_image
from .runner import evaluate_run, predict_logits, run_data

__all__ = ["Prediction", "collect_images", "evaluate_run", "predict_files", "predict_logits", "read_image", "run_data"]
