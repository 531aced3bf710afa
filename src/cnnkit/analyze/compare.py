"""``cnnkit compare-arch``: several architectures side by side (one column per model)."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from .fmt import commas, human, human_bytes, to_csv, to_markdown
from .result import ModelSummary
from .table import summary

# (label, function of a summary -> display text, function -> machine value)
_METRICS: list[tuple[str, Any, Any]] = [
    ("input", lambda s: "x".join(map(str, s.input_size)), lambda s: list(s.input_size)),
    ("parameters", lambda s: commas(s.totals.params), lambda s: s.totals.params),
    ("MACs / image", lambda s: human(s.totals.macs), lambda s: s.totals.macs),
    ("FLOPs / image", lambda s: human(s.totals.flops), lambda s: s.totals.flops),
    ("activations / image", lambda s: human(s.totals.activations), lambda s: s.totals.activations),
    ("activation memory (fwd)", lambda s: human_bytes(s.totals.act_bytes), lambda s: s.totals.act_bytes),
    ("parameter memory", lambda s: human_bytes(s.totals.param_bytes), lambda s: s.totals.param_bytes),
    ("RF of final features", lambda s: s.features_rf.size_str() if s.features_rf else "",
     lambda s: s.features_rf.to_dict() if s.features_rf else None),
    ("jump of final features", lambda s: s.features_rf.jump_str() if s.features_rf else "",
     lambda s: list(s.features_rf.jump) if s.features_rf and s.features_rf.is_local else None),
]  # fmt: skip


@dataclass
class ArchComparison:
    """The totals of several :class:`ModelSummary` objects, one column per model."""

    summaries: list[ModelSummary]

    def _table(self) -> tuple[list[str], list[list[str]]]:
        header = ["", *(s.model for s in self.summaries)]
        return header, [[label, *(text(s) for s in self.summaries)] for label, text, _ in _METRICS]

    def to_dict(self) -> dict[str, Any]:
        return {"dtype": self.summaries[0].dtype if self.summaries else "",
                "models": [{"model": s.model, **{label: value(s) for label, _, value in _METRICS}}
                           for s in self.summaries]}  # fmt: skip

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def to_csv(self) -> str:
        header, rows = self._table()
        return to_csv(["metric", *header[1:]], rows)

    def to_markdown(self) -> str:
        header, rows = self._table()
        return to_markdown(header, rows, [False] + [True] * (len(header) - 1))

    def __rich__(self) -> Any:
        from rich.markup import escape  # model names may be run folder names: text, not markup
        from rich.table import Table

        header, rows = self._table()
        dtype = self.summaries[0].dtype if self.summaries else ""
        t = Table(title=f"architectures compared (memory in {dtype}, per image)", header_style="bold")
        t.add_column(header[0], style="bold")
        for h in header[1:]:
            t.add_column(escape(h), justify="right")
        for r in rows:
            t.add_row(*map(escape, r))
        return t

    def __str__(self) -> str:
        from rich.console import Console

        buf = io.StringIO()
        Console(file=buf, width=200, no_color=True, highlight=False).print(self)
        return buf.getvalue()


def compare_arch(
    models: Sequence[nn.Module | str | Path],
    input_size: Any = None,
    num_classes: int | None = None,
    dtype: str | None = None,
) -> ArchComparison:
    """Summaries of ``models`` (names, modules or run folders), each at its own default input unless
    ``input_size`` is given."""
    return ArchComparison(
        [summary(m, input_size=input_size, num_classes=num_classes, dtype=dtype) for m in models]
    )
