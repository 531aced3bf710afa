"""``run.explain(image)``: an attribution map of an image held in memory, shown inline in a notebook.

The same computation as ``cnnkit explain`` (:func:`~cnnkit.explain.commands.explain_image`), for
images in any form :func:`~cnnkit.data.images.to_image_tensor` takes (path, PIL image, NumPy array,
tensor), returning the numbers instead of writing a file; a notebook draws the result with the
figure ``cnnkit explain`` writes.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..data.images import to_image_tensor
from ..errors import ConfigError
from ._common import class_index, from_run, predict_proba, top_k
from .attribution import SIGNED, attribute, check_method, gradcam_layer


@dataclass(repr=False)
class Explanation:
    """Where the model looks in one image, for one class."""

    image: torch.Tensor  # C x H x W in [0, 1], at the model's input size (what the model saw)
    heatmap: torch.Tensor  # H x W; >= 0, or signed for the methods in SIGNED
    method: str
    target: str  # the class explained (default: the predicted one)
    layer: str | None  # Grad-CAM's layer
    top: list[tuple[str, float]]  # (class, probability), best first

    def __repr__(self) -> str:
        h, w = self.heatmap.shape
        best, p = self.top[0]
        return (
            f"Explanation({self.method} for class {self.target!r}, {h}x{w} map; predicted {best!r} {p:.1%})"
        )

    def png(self) -> bytes:
        """The figure of ``cnnkit explain`` (input, map, overlay, top classes) as PNG bytes."""
        from .plots import plot_attribution

        with tempfile.TemporaryDirectory() as d:  # the plot writes a file; nothing of the user's is touched
            path = plot_attribution(self.image, self.heatmap, self.top, self.method, self.target,
                                    Path(d) / "explain.png", signed=self.method in SIGNED, layer=self.layer)  # fmt: skip
            return path.read_bytes()

    def _repr_png_(self) -> bytes:
        return self.png()


def explain_run(run: Any, image: Any, method: str = "gradcam", target: int | str | None = None,
                layer: str | None = None) -> Explanation:  # fmt: skip
    """Attribution map of ``method`` for ``target`` (default: the predicted class) in one image."""
    check_method(method)
    if layer is not None and method != "gradcam":
        raise ConfigError(
            f"layer= is only used by gradcam, not {method}", hint="drop layer= or use method='gradcam'"
        )
    if isinstance(image, (list, tuple)):
        raise ConfigError(
            "explain takes one image, not a list", hint="call run.explain(image) for each image"
        )
    model = from_run(run).to(run.device)  # its mean/std buffers go where the weights are
    c, h, w = (int(v) for v in run.meta.input_size)
    x = to_image_tensor(image, c, (h, w)).float().div(255.0).unsqueeze(0).to(run.device)
    probs = predict_proba(model, x)[0].cpu()
    t = class_index(target, run.classes, len(run.classes))
    t = int(probs.argmax()) if t is None else t
    shown = None
    if method == "gradcam":
        asked, hooked = gradcam_layer(model, layer, x)
        shown = asked if asked == hooked else f"{asked} (read after its activation {hooked})"
        layer = asked
    heat = attribute(model, x, method, t, layer=layer)[0].detach().cpu()
    return Explanation(x[0].cpu(), heat, method, run.classes[t], shown, top_k(probs, run.classes, 5))
