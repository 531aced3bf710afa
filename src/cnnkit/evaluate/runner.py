"""Evaluate a saved run on its recorded test (or validation) split."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..config import TrainConfig
from ..data import Normalize, TensorLoader
from ..errors import CheckpointError
from ..io import atomic_write_json
from ..run import LoadedRun, RunDir, load_run


def run_data(run: LoadedRun, data: str | None = None):
    """The dataset a run was trained on, split exactly as recorded in ``split.json``."""
    from ..engine.train import load_data_for

    cfg = TrainConfig.from_dict(run.config, source=str(run.path / "config.yaml"))
    if data is not None:
        cfg = cfg.replace(data=data)
    ds = load_data_for(cfg)
    split_file = RunDir(run.path).split
    if data is None and split_file.is_file():
        saved = json.loads(split_file.read_text())
        for s in ("train", "val", "test"):
            if saved.get(s) != list(ds.split(s).ids):
                raise CheckpointError(
                    f"the {s} split of {cfg.data!r} no longer matches {str(split_file)!r}",
                    hint="the dataset changed since training; pass --data to evaluate on other data",
                )
    if ds.classes != run.classes:
        raise CheckpointError(
            f"dataset classes {ds.classes[:5]}... differ from the model's {run.classes[:5]}...",
            hint="evaluate on data with the same classes as the training set",
        )
    return ds


@torch.no_grad()
def predict_logits(run: LoadedRun, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Logits for uint8 images already at the model's input size (``N x C x H x W``)."""
    from ..data import ImageData

    device = next(run.model.parameters()).device
    norm = Normalize(run.meta.mean, run.meta.std)
    labels = torch.zeros(len(images), dtype=torch.long)
    loader = TensorLoader(ImageData(images, labels, [""] * len(images)), batch_size, norm, device=device)
    outs = [run.model(x).float().cpu() for x, _ in loader]
    return torch.cat(outs) if outs else torch.zeros(0, run.meta.num_classes)


def evaluate_run(
    run_dir: str | Path, split: str = "test", data: str | None = None, device: str = "cpu", write: bool = True
) -> dict[str, Any]:
    """Top-1/top-5 accuracy and loss of a run's best weights on ``split``; written to ``eval/<split>/``."""
    from ..engine.device import select_device

    dev = select_device(device)
    run = load_run(run_dir, device=dev)
    ds = run_data(run, data)
    part = ds.split(split)
    logits = predict_logits(run, part.images)
    y = part.labels
    n = max(len(y), 1)
    k = min(5, logits.shape[1])
    metrics = {
        "split": split,
        "n": len(y),
        "acc": float((logits.argmax(1) == y).sum()) / n,
        "top5": float((logits.topk(k, 1).indices == y[:, None]).any(1).sum()) / n,
        "loss": float(torch.nn.functional.cross_entropy(logits, y)) if len(y) else float("nan"),
    }
    metrics["error"] = 1 - metrics["acc"]
    metrics["top5_error"] = 1 - metrics["top5"]
    if write:
        atomic_write_json(Path(run.path) / "eval" / split / "metrics.json", metrics)
    return metrics
