"""What :func:`cnnkit.summary` returns, and how it is printed and exported.

:class:`LayerRow` (one layer call, or a folded block), :class:`Totals` (the whole network, per image
and per batch) and :class:`ModelSummary` (rows + totals) with their renderings: a rich table for the
terminal, Markdown, CSV and JSON. How the numbers are measured, and the lecture's convention for
activation memory, is in :mod:`cnnkit.analyze.table`.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any

from .fmt import commas, human, human_bytes, to_csv, to_markdown
from .rf import ReceptiveField


@dataclass
class LayerRow:
    """One row of the table (one layer call, or a block folded by ``depth``). Counts are per image."""

    name: str
    type: str
    kind: str  # conv, linear, pool, norm, act, dropout, reshape, pad, other, input, block
    depth: int
    output_shape: tuple[int, ...]  # C x H x W (no batch dimension)
    params: int
    trainable: int
    frozen: int
    macs: int
    out_elems: int  # elements of this layer's output
    act_elems: int  # elements counted as activation memory (0 for ReLU/BN/... rows, see module doc)
    act_bytes: int
    rf: ReceptiveField | None
    note: str = ""  # "!": the output-size formula does not divide and the framework rounds
    folded: bool = False

    @property
    def counted(self) -> bool:
        return self.act_elems > 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "type": self.type, "kind": self.kind, "depth": self.depth,
            "output_shape": list(self.output_shape), "params": self.params, "trainable": self.trainable,
            "frozen": self.frozen, "macs": self.macs, "out_elems": self.out_elems, "act_elems": self.act_elems,
            "act_bytes": self.act_bytes, "rf": self.rf.to_dict() if self.rf else None, "note": self.note,
            "folded": self.folded,
        }  # fmt: skip


@dataclass
class Totals:
    """Whole-network numbers, per image and (times ``batch``) per batch."""

    params: int
    trainable: int
    frozen: int
    params_not_run: int  # in modules the forward pass never called (auxiliary heads in eval mode)
    macs: int  # per image
    activations: int  # per image, lecture convention (input + conv/pool/FC outputs)
    all_outputs: int  # per image, input + every layer's output
    bytes_per_element: int
    batch: int = 1

    @property
    def flops(self) -> int:
        """2 FLOPs (a multiply and an add) per MAC."""
        return 2 * self.macs

    @property
    def act_bytes(self) -> int:
        """Forward activation memory of one image."""
        return self.activations * self.bytes_per_element

    @property
    def act_bytes_train(self) -> int:
        """Forward + backward estimate for one image: a gradient the size of each stored activation."""
        return 2 * self.act_bytes

    @property
    def param_bytes(self) -> int:
        return self.params * self.bytes_per_element

    @property
    def grad_bytes(self) -> int:
        return self.trainable * self.bytes_per_element

    @property
    def train_bytes_batch(self) -> int:
        """Parameters + gradients + forward/backward activations of a batch (no optimiser state)."""
        return self.param_bytes + self.grad_bytes + self.batch * self.act_bytes_train

    def to_dict(self) -> dict[str, Any]:
        b = self.batch
        return {
            "params": self.params, "trainable": self.trainable, "frozen": self.frozen,
            "params_not_run": self.params_not_run, "macs": self.macs, "flops": self.flops,
            "activations": self.activations, "all_outputs": self.all_outputs,
            "bytes_per_element": self.bytes_per_element, "act_bytes_forward": self.act_bytes,
            "act_bytes_forward_backward": self.act_bytes_train, "param_bytes": self.param_bytes,
            "grad_bytes": self.grad_bytes, "batch": b, "macs_batch": b * self.macs, "flops_batch": b * self.flops,
            "act_bytes_forward_batch": b * self.act_bytes, "act_bytes_forward_backward_batch": b * self.act_bytes_train,
            "train_bytes_batch": self.train_bytes_batch,
        }  # fmt: skip


LEGEND = (
    "Shapes are C x H x W; counts are per image. Activations: the input and the outputs of conv, pooling and "
    "FC layers (the lecture's convention: an activation function, normalisation or dropout is part of the "
    "layer it follows); '-' = not counted. RF: receptive field in input pixels; jump: distance between "
    "neighbouring units in input pixels (effective stride); start: centre of the first unit's field. "
    "!: (N-P+2z)/s+1 is not a whole number; the framework rounds down (up for ceil_mode pooling)."
)


@dataclass
class ModelSummary:
    """The per-layer table and totals returned by :func:`summary`."""

    model: str
    input_size: tuple[int, int, int]
    batch: int
    dtype: str
    depth: int | None
    rows: list[LayerRow]
    totals: Totals
    features_rf: ReceptiveField | None = None  # receptive field of the final conv features
    notes: list[str] = field(default_factory=list)

    def row(self, name: str) -> LayerRow:
        """The row called ``name`` (e.g. ``"features.0"``)."""
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(f"no row {name!r}; rows: {', '.join(r.name for r in self.rows[:12])}, ...")

    # -- machine-readable --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "input_size": list(self.input_size), "batch": self.batch, "dtype": self.dtype,
            "depth": self.depth, "rows": [r.to_dict() for r in self.rows], "totals": self.totals.to_dict(),
            "features_rf": self.features_rf.to_dict() if self.features_rf else None, "notes": list(self.notes),
        }  # fmt: skip

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    _CSV = ("name", "type", "kind", "depth", "output_shape", "params", "trainable", "frozen", "macs", "out_elems",
            "act_elems", "act_bytes", "rf_kind", "rf_h", "rf_w", "jump_h", "jump_w", "start_h", "start_w", "note")  # fmt: skip

    def to_csv(self) -> str:
        """One line per row plus a ``TOTAL`` line (per image)."""
        lines: list[list[object]] = []
        for r in self.rows:
            rf = r.rf
            geo = ["", "", "", "", "", "", ""] if rf is None else [rf.kind, *rf.size, *rf.jump, *rf.start]
            lines.append([r.name, r.type, r.kind, r.depth, "x".join(map(str, r.output_shape)), r.params, r.trainable,
                          r.frozen, r.macs, r.out_elems, r.act_elems, r.act_bytes, *geo, r.note])  # fmt: skip
        t = self.totals
        lines.append(["TOTAL", "", "", "", "", t.params, t.trainable, t.frozen, t.macs, t.all_outputs, t.activations,
                      t.act_bytes, "", "", "", "", "", "", "", ""])  # fmt: skip
        return to_csv(self._CSV, lines)

    # -- human-readable ----------------------------------------------------------------------------
    def _table_rows(self) -> tuple[list[str], list[list[str]], list[bool]]:
        frozen = any(r.frozen for r in self.rows)
        notes = any(r.note for r in self.rows)
        header = ["layer", "type", "output", "params"] + (["frozen"] if frozen else []) + [
            "MACs", "activations", "memory", "RF", "jump", "start"] + (["!"] if notes else [])  # fmt: skip
        right = (
            [False, False, False, True] + ([True] if frozen else []) + [True] * 6 + ([False] if notes else [])
        )
        body = []
        for r in self.rows:
            rf = r.rf
            cells = [r.name, r.type + (" (folded)" if r.folded else ""), "x".join(map(str, r.output_shape)),
                     commas(r.params) if r.params else ""]  # fmt: skip
            if frozen:
                cells.append(commas(r.frozen) if r.frozen else "")
            cells += [human(r.macs) if r.macs else "",
                      commas(r.act_elems) if r.counted else "-",
                      human_bytes(r.act_bytes) if r.counted else "-",
                      rf.size_str() if rf else "", rf.jump_str() if rf else "", rf.start_str() if rf else ""]  # fmt: skip
            if notes:
                cells.append(r.note)
            body.append(cells)
        return header, body, right

    def totals_lines(self) -> list[tuple[str, str]]:
        """(label, text) pairs of the totals block."""
        t, b = self.totals, self.batch
        per = f" (batch of {b}: " if b > 1 else ""
        lines = [
            ("parameters", f"{commas(t.params)}  (trainable {commas(t.trainable)}, frozen {commas(t.frozen)})"
                           f"  = {human_bytes(t.param_bytes)} in {self.dtype}, gradients {human_bytes(t.grad_bytes)}"),
            ("MACs", f"{human(t.macs)} per image ({commas(t.macs)}), FLOPs {human(t.flops)}"
                     + (per + f"{human(b * t.macs)} MACs, {human(b * t.flops)} FLOPs)" if b > 1 else "")),
            ("activations", f"{commas(t.activations)} per image = {human_bytes(t.act_bytes)} forward, "
                            f"~{human_bytes(t.act_bytes_train)} forward+backward (x2)"
                            + (per + f"{human_bytes(b * t.act_bytes)} / {human_bytes(b * t.act_bytes_train)})"
                               if b > 1 else "")),
            ("all layer outputs", f"{commas(t.all_outputs)} per image = {human_bytes(t.all_outputs * t.bytes_per_element)}"
                                  " (every layer's output, ReLU/BN included: an upper bound)"),
            ("training memory", f"~{human_bytes(t.train_bytes_batch)} for a batch of {b}: parameters + gradients + "
                                "activations forward+backward (optimiser state not included)"),
        ]  # fmt: skip
        if self.features_rf is not None:
            f = self.features_rf
            extra = f" (jump {f.jump_str()}, start {f.start_str()})" if f.is_local else ""
            lines.append(("final features RF", f.size_str() + extra))
        return lines

    def title(self) -> str:
        c, h, w = self.input_size
        return f"{self.model}  input {c}x{h}x{w}  batch {self.batch}  {self.dtype}"

    def __rich__(self) -> Any:
        from rich.console import Group
        from rich.markup import escape  # names come from run folders and modules: text, not markup
        from rich.table import Table
        from rich.text import Text

        header, body, right = self._table_rows()
        table = Table(title=escape(self.title()), header_style="bold", show_lines=False, pad_edge=False)
        for h, r in zip(header, right, strict=True):
            # Numbers and shapes never wrap; names and notes fold when the terminal is narrow.
            wrap = h in ("layer", "type", "!")
            table.add_column(h, justify="right" if r else "left", overflow="fold", no_wrap=not wrap)
        for row, lr in zip(body, self.rows, strict=True):
            table.add_row(*map(escape, row), style="dim" if not lr.counted and not lr.macs and not lr.params else None)
        totals = Table.grid(padding=(0, 2))
        totals.add_column(style="bold")
        totals.add_column()
        for k, v in self.totals_lines():
            totals.add_row(k, v)
        parts: list[Any] = [table, totals]
        parts += [Text(n, style="yellow") for n in self.notes]
        parts.append(Text(LEGEND, style="dim"))
        return Group(*parts)

    def __repr__(self) -> str:  # the dataclass repr would list every row; str() is the full table
        t = self.totals
        return (f"ModelSummary({self.title()}: {commas(t.params)} parameters, {human(t.macs)} MACs per image, "
                f"{len(self.rows)} rows)")  # fmt: skip

    def _repr_html_(self) -> str:
        """The table, totals and legend as HTML (Jupyter shows this instead of the repr)."""
        from .._html import esc, fields, section, table

        header, body, right = self._table_rows()
        notes = "".join(f"<div>{esc(n)}</div>" for n in self.notes)
        return section(self.title(), table(header, body, right), fields(self.totals_lines()), notes,
                       f'<div style="font-size:11px;color:#666">{esc(LEGEND)}</div>')  # fmt: skip

    def __str__(self) -> str:
        from rich.console import Console

        buf = io.StringIO()
        Console(file=buf, width=200, no_color=True, highlight=False).print(self)
        return buf.getvalue()

    def to_markdown(self) -> str:
        header, body, right = self._table_rows()
        out = [f"### {self.title()}\n", to_markdown(header, body, right), ""]
        out += [f"- **{k}**: {v}" for k, v in self.totals_lines()]
        out += [f"- {n}" for n in self.notes]
        out += ["", LEGEND, ""]
        return "\n".join(out)
