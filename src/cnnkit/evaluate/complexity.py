"""Parameters and multiply-accumulates (MACs) per layer, for the report and ``cnnkit compare``.

The numbers come from :func:`cnnkit.analyze.summary` (the per-layer table of the design: it traces
every operation, so it also counts pooling, normalisation and matrix products). When that package
is not installed, :func:`layer_table` falls back to the small helper below, which is enough for
the evaluation: forward hooks on the leaf modules of one dummy forward pass record each layer's
output shape; MACs are counted for the layers that dominate the cost of a CNN classifier:

* ``Conv2d``: ``H_out * W_out * C_out * (C_in / groups) * k_h * k_w`` per image;
* ``Linear``: ``out_features * in_features`` per output row (per image for a flat input).

Pooling, activations and normalisation are left out (they are a few percent of the total),
as in the usual "MACs/FLOPs" tables of the papers the lectures quote.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass
class LayerRow:
    """One leaf layer of the model as seen during a forward pass."""

    name: str
    kind: str
    out_shape: tuple[int, ...]  # without the batch dimension
    params: int  # the layer's own parameters (counted once even if the layer is called twice)
    macs: int  # per image, summed over calls


def _macs(module: nn.Module, out: torch.Tensor) -> int:
    per_image = out[0].numel() if out.ndim > 0 and len(out) else 0
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return per_image * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        return per_image * module.in_features
    return 0


def analyze_summary() -> Any | None:
    """``cnnkit.analyze.summary`` if that package is there, else ``None`` (use the hooks below)."""
    try:
        from ..analyze import summary
    except ImportError:
        return None
    return summary


def layer_table(model: nn.Module, input_size: tuple[int, int, int] | list[int]) -> list[LayerRow]:
    """Layers in call order with output shape, own parameters and MACs for one image.

    From :func:`cnnkit.analyze.summary` when available, else from :func:`hook_layer_table`.
    """
    summary = analyze_summary()
    if summary is None:
        return hook_layer_table(model, input_size)
    s = summary(model, tuple(input_size))
    return [LayerRow(r.name, r.type, tuple(r.output_shape), r.params, r.macs) for r in s.rows if r.kind != "input"]


def counted_by() -> str:
    """Which counter :func:`layer_table` uses (recorded in metrics.json next to the MACs)."""
    if analyze_summary() is not None:
        return "cnnkit.analyze.summary"
    return "cnnkit.evaluate.complexity hooks (Conv2d + Linear)"


@torch.no_grad()
def hook_layer_table(model: nn.Module, input_size: tuple[int, int, int] | list[int]) -> list[LayerRow]:
    """Leaf layers in call order with output shape, own parameters and Conv2d/Linear MACs for one image."""
    rows: dict[str, LayerRow] = {}
    hooks = []

    def hook(name: str):
        def fn(mod: nn.Module, _inp: tuple, out: object) -> None:
            t = out[0] if isinstance(out, (tuple, list)) else out
            if not isinstance(t, torch.Tensor):
                return
            if name not in rows:
                own = sum(p.numel() for p in mod.parameters(recurse=False))
                rows[name] = LayerRow(name, type(mod).__name__, tuple(t.shape[1:]), own, 0)
            rows[name].macs += _macs(mod, t)

        return fn

    for name, mod in model.named_modules():
        if not any(True for _ in mod.children()):  # leaves only (the model itself if it is one layer)
            hooks.append(mod.register_forward_hook(hook(name or type(mod).__name__)))
    was = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        model(torch.zeros(1, *input_size, device=device))
    finally:
        model.train(was)
        for h in hooks:
            h.remove()
    return list(rows.values())


def count_macs(model: nn.Module, input_size: tuple[int, int, int] | list[int]) -> int:
    """Multiply-accumulates of one forward pass of one image (see :func:`layer_table`)."""
    return sum(r.macs for r in layer_table(model, input_size))


def model_cost(model: nn.Module, input_size: tuple[int, int, int] | list[int]) -> dict[str, int]:
    """``{"params": ..., "macs": ...}`` of a model for one image."""
    return {"params": sum(p.numel() for p in model.parameters()), "macs": count_macs(model, input_size)}


def per_unit(acc: float, amount: float, unit: float) -> float:
    """Accuracy per ``unit`` of ``amount`` (e.g. per million parameters); NaN when amount is 0."""
    return acc / (amount / unit) if amount and not math.isnan(acc) else float("nan")
