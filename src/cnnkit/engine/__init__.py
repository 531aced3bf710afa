"""Engine: the training loop, optimisers and schedules, losses, checkpoints, devices."""

from .loop import Trainer, evaluate_loader
from .train import TrainResult, load_data_for, train

__all__ = ["TrainResult", "Trainer", "evaluate_loader", "load_data_for", "train"]
