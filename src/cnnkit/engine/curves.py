"""Training curves: loss and accuracy per epoch, written to the run folder as ``curves.png``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers or CI
import matplotlib.pyplot as plt  # noqa: E402


def _col(rows: list[dict[str, Any]], key: str) -> list[float]:
    return [float(r[key]) if r.get(key) not in (None, "") else float("nan") for r in rows]


def plot_curves(rows: list[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """Loss and accuracy per epoch, train vs validation, side by side; saved as PNG."""
    from ..io import atomic_write

    ep = [int(r["epoch"]) for r in rows]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4), dpi=110)
    a1.plot(ep, _col(rows, "train_loss"), "o-", ms=3, label="train")
    a1.plot(ep, _col(rows, "val_loss"), "s-", ms=3, label="validation")
    a1.set(xlabel="epoch", ylabel="loss", title="Loss")
    a2.plot(ep, [100 * v for v in _col(rows, "train_acc")], "o-", ms=3, label="train")
    a2.plot(ep, [100 * v for v in _col(rows, "val_acc")], "s-", ms=3, label="validation")
    a2.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy")
    for a in (a1, a2):
        a.grid(alpha=0.3)
        a.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, format="png"))
    plt.close(fig)
    return Path(path)
