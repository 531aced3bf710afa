"""Parameters and multiply-accumulates (MACs) per layer, for the report and ``cnnkit compare``.

The numbers come from :func:`cnnkit.analyze.summary`, the per-layer table of the design: it traces
every operation of one forward pass, so besides convolutions and fully connected layers it also
counts pooling, normalisation and matrix products (see :mod:`cnnkit.analyze.ops` for the
conventions). This module only reshapes its rows for the evaluation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import nn

from ..analyze import summary


@dataclass
class LayerRow:
    """One layer of the model as seen during a forward pass."""

    name: str
    kind: str
    out_shape: tuple[int, ...]  # without the batch dimension
    params: int  # the layer's own parameters (counted once even if the layer is called twice)
    macs: int  # per image, summed over calls


def layer_table(model: nn.Module, input_size: tuple[int, int, int] | list[int]) -> list[LayerRow]:
    """Layers in call order with output shape, own parameters and MACs for one image."""
    s = summary(model, tuple(input_size))
    return [LayerRow(r.name, r.type, tuple(r.output_shape), r.params, r.macs) for r in s.rows if r.kind != "input"]


def counted_by() -> str:
    """Which counter :func:`layer_table` uses (recorded in metrics.json next to the MACs)."""
    return "cnnkit.analyze.summary"


def count_macs(model: nn.Module, input_size: tuple[int, int, int] | list[int]) -> int:
    """Multiply-accumulates of one forward pass of one image (see :func:`layer_table`)."""
    return sum(r.macs for r in layer_table(model, input_size))


def model_cost(model: nn.Module, input_size: tuple[int, int, int] | list[int]) -> dict[str, int]:
    """``{"params": ..., "macs": ...}`` of a model for one image."""
    return {"params": sum(p.numel() for p in model.parameters()), "macs": count_macs(model, input_size)}


def per_unit(acc: float, amount: float, unit: float) -> float:
    """Accuracy per ``unit`` of ``amount`` (e.g. per million parameters); NaN when amount is 0."""
    return acc / (amount / unit) if amount and not math.isnan(acc) else float("nan")
