"""Exported models as plain functions: uint8 images in, logits out, for ONNX Runtime and TorchScript.

An export made by :mod:`cnnkit.deploy.export` takes ``uint8`` images ``N x C x H x W`` (0-255) at the
run's input size; the normalisation is inside the graph, so another runtime needs nothing but the
file. Its metadata (a JSON record under the key ``cnnkit``) carries the class names, mean/std, input
size and the cnnkit version that wrote it.
"""

from __future__ import annotations

import json
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError
from ..explain._common import PixelModel  # mean/std as buffers, the network as .model
from ._deps import require

EXPORT_FORMAT = "cnnkit-export/1"
META_KEY = "cnnkit"  # ONNX metadata_props key / TorchScript extra file "cnnkit.json"
INPUT_NAME, OUTPUT_NAME = "image", "logits"
INPUT_DOC = "uint8 images N x C x H x W (0-255) at the run's input size; normalisation is inside the graph"


class ImageModel(PixelModel):
    """``model(normalise(x / 255))`` for uint8 ``x``: what an export computes, normalisation folded in.

    The division and standardisation happen in float32 exactly as :class:`cnnkit.data.Normalize`
    does them, so the export and ``cnnkit predict`` see the same numbers.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float() / 255.0)


@dataclass
class Exported:
    """A loaded export: ``predict(uint8 N x C x H x W) -> float32 logits N x K`` and its metadata."""

    path: Path
    format: str
    meta: dict[str, Any]
    predict: Callable[[np.ndarray], np.ndarray]
    fixed_batch: int | None  # the batch size a static-shape ONNX graph takes, else None

    def logits(self, images: np.ndarray | torch.Tensor, chunk: int = 256) -> np.ndarray:
        """Logits of any number of images, fed in the batch size the graph accepts."""
        x = images.numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
        x = np.ascontiguousarray(x, dtype=np.uint8)
        step = self.fixed_batch or chunk
        outs = []
        for s in range(0, len(x), step):
            part = x[s : s + step]
            if self.fixed_batch and len(part) < step:  # pad the last batch of a static graph
                pad = np.zeros((step - len(part), *part.shape[1:]), dtype=np.uint8)
                outs.append(self.predict(np.concatenate([part, pad]))[: len(part)])
            else:
                outs.append(self.predict(part))
        k = len(self.meta.get("classes", [])) or 0
        return np.concatenate(outs).astype(np.float32) if outs else np.zeros((0, k), np.float32)


def read_metadata(path: str | Path) -> dict[str, Any] | None:
    """The cnnkit record of an export file, or ``None`` if ``path`` is not one (never runs the file)."""
    p = Path(path)
    if not p.is_file():
        return None
    try:
        if zipfile.is_zipfile(p):  # TorchScript archives are zip files with extra/cnnkit.json
            with zipfile.ZipFile(p) as z:
                names = [n for n in z.namelist() if n.endswith(f"/extra/{META_KEY}.json")]
                raw = z.read(names[0]).decode() if names else None
        else:
            onnx = require("onnx")
            m = onnx.load(str(p), load_external_data=False)
            raw = next((e.value for e in m.metadata_props if e.key == META_KEY), None)
        d = json.loads(raw) if raw else None
    except Exception:  # not an export (or damaged): the caller treats it as a foreign file
        return None
    return d if isinstance(d, dict) and d.get("format") == EXPORT_FORMAT else None


def load_exported(path: str | Path, threads: int | None = None) -> Exported:
    """Open an ONNX (onnxruntime, CPU) or TorchScript export written by ``cnnkit export``."""
    p = Path(path)
    meta = read_metadata(p)
    if meta is None:
        raise CheckpointError(f"{str(p)!r} is not a cnnkit export (no cnnkit metadata inside)",
                              hint="make one with: cnnkit export RUN_DIR --format onnx")  # fmt: skip
    if meta.get("export_format") == "torchscript":
        with warnings.catch_warnings():  # TorchScript is deprecated upstream, still the format asked for
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(str(p), map_location="cpu").eval()

        def run_ts(x: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return module(torch.from_numpy(x)).float().numpy()

        return Exported(p, "torchscript", meta, run_ts, None)
    ort = require("onnxruntime")
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    batch = inp.shape[0] if isinstance(inp.shape[0], int) else None

    def run_onnx(x: np.ndarray) -> np.ndarray:
        return sess.run(None, {inp.name: x})[0]

    return Exported(p, "onnx", meta, run_onnx, batch)
