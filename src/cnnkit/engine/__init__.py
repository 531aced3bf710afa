"""Engine: the training loop, optimisers and schedules, losses, checkpoints, devices."""

from ..registries import LOSSES, OPTIMIZERS, SCHEDULES
from .callbacks import Callback
from .loop import Trainer, evaluate_loader
from .losses import register_loss
from .lr_find import LRFindResult, lr_find
from .optim import register_optimizer
from .schedules import Progress, register_schedule
from .train import TrainResult, load_data_for, train

__all__ = ["LOSSES", "OPTIMIZERS", "Callback", "Progress", "SCHEDULES", "TrainResult", "Trainer", "evaluate_loader",
           "LRFindResult", "load_data_for", "lr_find", "register_loss", "register_optimizer", "register_schedule",
           "train"]  # fmt: skip
