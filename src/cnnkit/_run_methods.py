"""The notebook face of a loaded run: ``run.predict``, ``run.explain``, ``run.evaluate`` and its displays.

:class:`~cnnkit.run.LoadedRun` lives in the lowest layer (the run folder), while prediction,
evaluation and explanation live above it and import it. So that layers still call downward only,
those methods look up their implementation in :data:`ACTIONS`, which the public API
(``cnnkit/__init__.py``, imported before any submodule) fills with :func:`provide`. Nothing here
imports the rest of cnnkit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

ACTIONS: dict[str, Callable[..., Any]] = {}


def provide(name: str, fn: Callable[..., Any]) -> None:
    """Plug in the implementation of ``LoadedRun.<name>`` (called by the public API at import)."""
    ACTIONS[name] = fn


class RunMethods:
    """Mixed into :class:`~cnnkit.run.LoadedRun`: what a notebook user calls on a loaded run."""

    path: Path
    model: torch.nn.Module
    meta: Any  # WeightsMeta
    config: dict[str, Any]

    @property
    def device(self) -> torch.device:
        """Where the model's weights are."""
        p = next(self.model.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    def to(self, device: str | torch.device) -> Any:
        """Move the model to ``device`` (in place, like ``nn.Module.to``); returns the run."""
        self.model.to(device)
        return self

    def predict(self, images: Any, topk: int = 5, tta: str | None = None) -> list[Any]:
        """Top-k classes for image files, folders, PIL images, NumPy arrays or tensors (one or a list).

        The same as :func:`cnnkit.predict` with this run: a list of
        :class:`~cnnkit.evaluate.predict.Prediction`, one per image.
        """
        return ACTIONS["predict"](self, images, topk=topk, tta=tta)

    def explain(self, image: Any, method: str = "gradcam", target: int | str | None = None,
                layer: str | None = None) -> Any:  # fmt: skip
        """Where the model looks in one image (any form ``predict`` takes): an attribution map.

        Returns a :class:`~cnnkit.explain.notebook.Explanation` (``heatmap``, ``top``, ...), drawn
        as ``cnnkit explain`` draws it when a notebook displays it.
        """
        return ACTIONS["explain"](self, image, method=method, target=target, layer=layer)

    def evaluate(self, split: str = "test", **options: Any) -> Any:
        """Metrics of this run on its recorded ``split``: :func:`cnnkit.evaluate` with the run loaded.

        ``options`` are those of :func:`cnnkit.evaluate` (``write``, ``tta``, ``ensemble``, ...).
        """
        return ACTIONS["evaluate"](self, split=split, **options)

    # ---- display
    def _facts(self) -> list[tuple[str, str]]:
        m = self.meta
        c, h, w = m.input_size
        facts = [("model", m.model), ("classes", f"{m.num_classes}: " + ", ".join(m.classes[:12])
                                      + (", ..." if m.num_classes > 12 else "")),
                 ("input", f"{c}x{h}x{w}"), ("trained on", m.dataset or str(self.config.get("data", "")))]  # fmt: skip
        metric = m.metric or {}
        value = metric.get("value")
        if isinstance(value, (int, float)) and not math.isnan(value):
            shown = f"{value:.2%}" if str(metric.get("name", "")).endswith("acc") else f"{value:.4f}"
            facts.append(("best epoch", f"{m.epoch} ({metric.get('name', 'metric')} {shown})"))
        facts.append(("device", str(self.device)))
        return facts

    def __repr__(self) -> str:  # the dataclass repr would print the whole network
        m = self.meta
        return (f"LoadedRun({str(self.path)!r}: {m.model}, {m.num_classes} classes, input "
                f"{'x'.join(map(str, m.input_size))}, epoch {m.epoch})")  # fmt: skip

    def _repr_html_(self) -> str:
        from ._html import fields, img, section

        parts = [fields(self._facts())]
        curves = Path(self.path) / "curves.png"
        if curves.is_file():
            parts.append(img(curves.read_bytes(), width=640, title=str(curves)))
        return section(f"run {self.path}", *parts)
