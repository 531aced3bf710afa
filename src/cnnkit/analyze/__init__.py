"""Analysis of an architecture: per-layer shapes, parameters, MACs, memory and receptive fields.

``summary(model_or_name)`` measures them on one forward pass and returns a :class:`ModelSummary`
(a table you can print, or export with ``to_json``/``to_csv``/``to_markdown``);
``compare_arch(names)`` puts several models side by side. :mod:`.formulas` states the lectures'
closed-form rules (output size, parameter count) the measurements agree with.

Modules, bottom up: :mod:`.rf` (receptive-field arithmetic), :mod:`.ops` (what each torch operation
costs and does to the receptive field), :mod:`.meta_shapes` (output shapes on the meta device),
:mod:`.trace` (the forward pass that records every call), :mod:`.table` (``summary``: resolving the
model and building the rows), :mod:`.result` (rows, totals and their renderings), :mod:`.compare`.
"""

from .compare import ArchComparison, compare_arch
from .formulas import conv_macs, conv_params, effective_kernel, output_size
from .result import LayerRow, ModelSummary, Totals
from .rf import ReceptiveField
from .table import summary

__all__ = [
    "ArchComparison",
    "LayerRow",
    "ModelSummary",
    "ReceptiveField",
    "Totals",
    "compare_arch",
    "conv_macs",
    "conv_params",
    "effective_kernel",
    "output_size",
    "summary",
]
