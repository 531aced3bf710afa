"""What the service runs: the run's PyTorch model or an onnxruntime export of it.

Both take decoded images (PIL) and answer with top-k ``(class, probability)`` lists. Both convert
images with :func:`cnnkit.data.images.to_image_tensor`, the conversion ``cnnkit predict`` uses; the
torch backend goes through :func:`cnnkit.evaluate.predict.predict_images` itself, so a picture gets
the same answer from ``cnnkit predict`` and from ``POST /predict``.
"""

from __future__ import annotations

import base64
import io
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.images import to_image_tensor
from ..errors import DataError
from ..evaluate.predict import predict_images
from ..run import LoadedRun

Top = list[tuple[str, float]]


class TorchBackend:
    """The run's own PyTorch model on its device."""

    name = "torch"

    def __init__(self, run: LoadedRun) -> None:
        self.run = run

    def predict(self, images: Sequence[Any], k: int) -> list[Top]:
        preds = predict_images(self.run, list(images), topk=k, batch_size=max(1, len(images)))
        bad = next((p for p in preds if p.error), None)
        if bad is not None:  # images were decoded and checked before they got here
            raise DataError(str(bad.error))
        return [p.top for p in preds]


class OnnxBackend:
    """An ONNX export (any batch size) of the run, made at start-up and run by onnxruntime on the CPU."""

    name = "onnx"

    def __init__(self, run: LoadedRun, threads: int | None = None) -> None:
        from .export import export_run
        from .runtime import load_exported

        self.run = run
        self._tmp = tempfile.TemporaryDirectory(prefix="cnnkit-serve-")
        out = Path(self._tmp.name) / "model.onnx"
        export_run(run.path, "onnx", out, dynamic_batch=True, verify=False)
        self.exported = load_exported(out, threads=threads)

    def predict(self, images: Sequence[Any], k: int) -> list[Top]:
        c, h, w = self.run.meta.input_size
        x = torch.stack([to_image_tensor(im, c, (h, w)) for im in images])
        probs = torch.from_numpy(self.exported.logits(x)).double().softmax(1)
        k = max(1, min(k, probs.shape[1]))
        pv, pi = probs.topk(k, 1)
        return [
            [(self.run.classes[int(i)], float(p)) for p, i in zip(pv[j], pi[j], strict=True)]
            for j in range(len(x))
        ]


class GradCam:
    """Grad-CAM of the predicted class over the image, as a PNG data URL (what the page shows)."""

    def __init__(self, run: LoadedRun, display: int = 256) -> None:
        from ..explain._common import from_run

        self.run = run
        self.model = from_run(run)
        self.display = display
        self._lock = threading.Lock()  # one explanation at a time: it needs gradients and a model copy

    def overlay(self, image: Any) -> tuple[str, str]:
        """``(class explained, data:image/png;base64,...)`` for one decoded image."""
        from matplotlib import colormaps
        from PIL import Image

        from ..explain.attribution import gradcam

        c, h, w = self.run.meta.input_size
        x8 = to_image_tensor(image, c, (h, w))
        device = next(self.model.parameters()).device
        x = x8.float().div(255).unsqueeze(0).to(device)
        with self._lock:
            with torch.no_grad():
                target = int(self.model(x).argmax(1))
            heat = gradcam(self.model, x, target)[0].cpu().numpy()
        heat = heat / heat.max() if heat.max() > 0 else heat
        scale = max(1, self.display // max(h, w))
        size = (w * scale, h * scale)
        base = Image.fromarray(
            x8.permute(1, 2, 0).numpy().squeeze(-1) if c == 1 else x8.permute(1, 2, 0).numpy()
        )
        base = base.convert("RGB").resize(size, Image.NEAREST)
        colour = (colormaps["jet"](heat)[..., :3] * 255).astype(np.uint8)
        cam = Image.fromarray(colour).resize(size, Image.BILINEAR)
        blended = Image.blend(base, cam, 0.45)
        buf = io.BytesIO()
        blended.save(buf, format="PNG")
        return self.run.classes[target], "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def make_backend(run: LoadedRun, name: str, threads: int | None = None) -> TorchBackend | OnnxBackend:
    return OnnxBackend(run, threads) if name == "onnx" else TorchBackend(run)
