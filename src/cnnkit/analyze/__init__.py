"""Analysis of an architecture: per-layer shapes, parameters, MACs, memory and receptive fields.

``summary(model_or_name)`` measures them on one forward pass and returns a :class:`ModelSummary`
(a table you can print, or export with ``to_json``/``to_csv``/``to_markdown``);
``compare_arch(names)`` puts several models side by side. :mod:`.formulas` states the lectures'
closed-form rules (output size, parameter count) the measurements agree with.
"""

from .compare import ArchComparison, compare_arch
from .formulas import conv_macs, conv_params, effective_kernel, output_size
from .rf import ReceptiveField
from .table import LayerRow, ModelSummary, Totals, summary

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
