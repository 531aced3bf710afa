"""Shared plumbing of :mod:`cnnkit.explain`: pixel-space models, layers, classes, images.

Every explanation and attack in cnnkit works on images in **[0, 1] pixel space**: the attribution
of a pixel, an adversarial perturbation of ``eps = 8/255`` and a synthesised image all mean the
same thing whatever normalisation the model was trained with. :class:`PixelModel` puts the run's
``Normalize`` inside the model so gradients flow back to pixels.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, ModelError, suggest


class PixelModel(nn.Module):
    """``model(normalise(x))`` for ``x`` in [0, 1]: the model as a function of pixels.

    The wrapped network stays reachable as ``.model`` so layer names (``features.3``) are the
    ones the user sees in ``cnnkit summary`` and the run's model, not prefixed ones.
    """

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.model = model
        # Buffers, so .to(device) moves them along with the weights.
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)

    @property
    def channels(self) -> int:
        return int(self.mean.shape[1])


def pixel_model(model: nn.Module, mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> nn.Module:
    """Wrap ``model`` in :class:`PixelModel` unless it already is one (mean/std from ``model.info`` if not given)."""
    if isinstance(model, PixelModel):
        return model
    if mean is None or std is None:
        info = getattr(model, "info", None)
        if info is None:
            # A foreign module: assume it already takes [0, 1] pixels.
            return model
        mean, std = info.mean, info.std
    return PixelModel(model, mean, std)


def from_run(run: Any) -> PixelModel:
    """The :class:`PixelModel` of a :class:`~cnnkit.run.LoadedRun` (eval mode, its own mean/std)."""
    device = next(run.model.parameters(), torch.empty(0)).device  # mean/std buffers follow the weights (CUDA/MPS)
    return PixelModel(run.model, run.meta.mean, run.meta.std).to(device).eval()


def inner(model: nn.Module) -> nn.Module:
    """The network inside a :class:`PixelModel` (or ``model`` itself): where layer names live."""
    return model.model if isinstance(model, PixelModel) else model


def without_inplace(model: nn.Module) -> nn.Module:
    """A deep copy whose activations are not in-place.

    Why: Captum's guided backprop and deconvolution replace the gradient of every ``nn.ReLU`` with a
    backward hook, and layer hooks (Grad-CAM, feature maps) keep a layer's output; an in-place ReLU
    after a convolution overwrites that output and PyTorch refuses the hook ("a view was modified
    inplace"). cnnkit's models use ``ReLU(inplace=True)`` to save memory while training, so the
    explanation runs on a copy. The copy shares nothing with the original (weights are cloned).
    """
    m = copy.deepcopy(model)
    for mod in m.modules():
        if hasattr(mod, "inplace") and isinstance(mod.inplace, bool):
            mod.inplace = False
    return m.eval()


def resolve_layer(model: nn.Module, layer: str | nn.Module | None, kind: type | tuple[type, ...] = nn.Conv2d,
                  last: bool = True) -> tuple[str, nn.Module]:
    """``(name, module)`` of ``layer`` in the network inside ``model``.

    ``layer`` may be a name (``features.3``), a module, or ``None`` for the last (``last=True``) or
    first module of type ``kind`` — the last convolution for Grad-CAM, the first for filters.
    """
    from ..models.registry import get_submodule

    net = inner(model)
    if isinstance(layer, str):
        return layer, get_submodule(net, layer)
    named = [(n, m) for n, m in net.named_modules() if n]
    if isinstance(layer, nn.Module):
        for n, m in named:
            if m is layer:
                return n, m
        raise ModelError(f"layer {type(layer).__name__} is not part of the model")
    found = [(n, m) for n, m in named if isinstance(m, kind)]
    if not found:
        kinds = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise ModelError(f"model has no {kinds} layer", hint="pass a layer name with --layer")
    return found[-1] if last else found[0]


def same_layer(copy_: nn.Module, name: str) -> nn.Module:
    """The module called ``name`` inside ``copy_`` (e.g. a :func:`without_inplace` copy)."""
    return inner(copy_).get_submodule(name)


def class_index(target: int | str | None, classes: Sequence[str] | None, num_classes: int) -> int | None:
    """A class given by name or index -> its index; ``None`` stays ``None`` (use the prediction).

    Names win over indices, so a class literally called ``"3"`` is found by name first.
    """
    if target is None:
        return None
    if classes is not None and str(target) in classes:
        return list(classes).index(str(target))
    try:
        i = int(target)
    except (TypeError, ValueError):
        raise ConfigError(f"unknown class {target!r}", hint=suggest(str(target), classes or [])) from None
    if not 0 <= i < num_classes:
        raise ConfigError(f"class index {i} is out of range 0..{num_classes - 1}")
    return i


def load_image(path: str | Path, channels: int, size: tuple[int, int]) -> torch.Tensor:
    """An image file as a ``1 x C x H x W`` float tensor in [0, 1] at the model's input size."""
    from ..data.images import read_image
    from ..errors import DataError

    if Path(path).is_dir():  # say so, rather than relay the decoder's "Is a directory"
        raise DataError(f"image {str(path)!r} is a folder, not an image file", hint="pass one image file")
    return read_image(path, channels, size).float().div(255.0).unsqueeze(0)


def to_pixels(images: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float [0, 1]; float images pass through."""
    return images.float().div(255.0) if images.dtype == torch.uint8 else images.float()


def device_of(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def require_captum() -> Any:
    """Import Captum with an installable hint when it is missing (it is an optional dependency)."""
    try:
        import captum.attr as ca
    except ImportError:  # pragma: no cover - captum is installed in the dev environment
        raise ConfigError(
            "this explanation method needs Captum, which is not installed",
            hint="pip install 'cnnkit[explain]' (or pip install captum)",
        ) from None
    return ca


@torch.no_grad()
def predict_proba(model: nn.Module, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Softmax probabilities of ``model`` for ``x`` (computed in batches)."""
    outs = [model(x[i : i + batch_size]).float().softmax(1) for i in range(0, len(x), batch_size)]
    return torch.cat(outs) if outs else torch.zeros(0)


def top_k(probs: torch.Tensor, classes: Sequence[str], k: int = 5) -> list[tuple[str, float]]:
    """``[(class name, probability), ...]`` best first, for one probability vector."""
    k = max(1, min(k, probs.numel()))
    v, i = probs.topk(k)
    return [(str(classes[int(j)]), float(p)) for p, j in zip(v, i, strict=True)]


def class_names(model: nn.Module, n: int, classes: Sequence[str] | None = None) -> list[str]:
    """``classes`` if given, else ``"0".."n-1"``."""
    return list(classes) if classes is not None else [str(i) for i in range(n)]
