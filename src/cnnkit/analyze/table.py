"""``cnnkit.summary``: the lectures' per-layer table for any model.

For every layer: output shape, parameters (trainable / frozen), multiply-accumulates, activations
and their memory, and the receptive field (size, jump, start); totals for the whole network.
Everything is measured on one forward pass of a zero image through the model's own code (see
:mod:`cnnkit.analyze.trace`); a model built by name runs on PyTorch's ``meta`` device, which computes
shapes without arithmetic, so even VGG-16 answers at once. MACs and activations scale linearly with
the batch, so the pass runs one image and the totals multiply.

**Activation memory follows the lecture's VGG-16 table** (seed 001): the input plus one feature map
per convolution, pooling and fully connected layer. An activation function, normalisation or
dropout counts as part of the layer it follows (the table's ``CONV3-64`` row includes its ReLU;
PyTorch runs those in place or could fuse them), and reshapes or no-op pooling (VGG's
``AdaptiveAvgPool2d(7)`` on a 7x7 map) store nothing new. With that definition VGG-16 at 224 px
holds 15,237,608 values per image (61 MB in float32), which is exactly the sum of the table's rows;
the "24M ... ~93MB" on the table's TOTAL line does not match its own rows (a known slip,
cs231n/cs231n.github.io#88). Backpropagation keeps a gradient of the same size for each, hence the
lecture's "~x2 for backward". ``all_outputs`` adds every other layer's output (ReLU, BN, dropout
included), an upper bound like torchinfo's "forward/backward pass size".
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CnnkitError, ConfigError, ModelError, suggest
from .fmt import commas, human, human_bytes, to_csv, to_markdown
from .rf import ReceptiveField
from .trace import Node, Tracer

COUNTED_KINDS = ("conv", "linear", "pool")  # layers whose output the lecture's table lists

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32, "fp32": torch.float32,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float64": torch.float64,
}  # fmt: skip


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


# -- resolving what to summarise ---------------------------------------------------------------------
MAX_SIDE = 8192  # pixels: beyond any CNN input; a model falling back to the CPU allocates C x H x W floats
MAX_CHANNELS = 1024


def parse_input_size(spec: Any) -> tuple[int, ...] | None:
    """``"3x224x224"``, ``"224x224"``, ``"224"``, an int or a tuple -> a tuple of 1 to 3 positive ints.

    Sides are at most :data:`MAX_SIDE` and channels at most :data:`MAX_CHANNELS`: a 100000 x 100000
    input is a typo, and tracing it on the CPU would try to allocate tens of gigabytes.
    """
    if spec is None:
        return None
    given = spec  # for the message: "input size '' ..." rather than the parsed "()"
    if isinstance(spec, int):
        spec = (spec,)
    if isinstance(spec, str):
        parts = spec.lower().replace(",", "x").split("x")
        try:
            spec = tuple(int(p) for p in parts if p.strip())
        except ValueError:
            raise ConfigError(f"input size {spec!r} is not C x H x W",
                              hint="write it like 3x224x224, 224x224 or 224") from None  # fmt: skip
    try:
        size = tuple(int(v) for v in spec)
    except (TypeError, ValueError):
        raise ConfigError(f"input size {spec!r} is not C x H x W", hint="e.g. 3x224x224") from None
    shown = "x".join(map(str, size)) if size else repr(given)
    if not 1 <= len(size) <= 3 or any(v < 1 for v in size):
        raise ConfigError(f"input size {shown} must be 1 to 3 positive numbers", hint="e.g. 3x224x224")
    if any(v > MAX_SIDE for v in size[-2:]) or (len(size) == 3 and size[0] > MAX_CHANNELS):
        raise ConfigError(f"input size {shown} is too large (at most {MAX_CHANNELS} channels and "
                          f"{MAX_SIDE} x {MAX_SIDE} pixels)", hint="e.g. 3x224x224")  # fmt: skip
    return size


def _complete(size: tuple[int, ...] | None, default: tuple[int, int, int]) -> tuple[int, int, int]:
    if size is None:
        return default
    if len(size) == 1:
        return (default[0], size[0], size[0])
    if len(size) == 2:
        return (default[0], size[0], size[1])
    return size  # type: ignore[return-value]


_INIT_FUNCTIONS = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
                   "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_",
                   "sparse_")  # fmt: skip


@contextlib.contextmanager
def _no_init_on_meta() -> Iterator[None]:
    """Skip ``torch.nn.init`` on meta tensors while a model is built.

    Initialising a meta tensor computes nothing, but the first random initialiser called on one
    imports ``torch._dynamo`` (about a second of start-up). The wrappers only short-circuit meta
    tensors; any other tensor (another thread building a real model) is initialised as usual.
    """
    saved = {n: getattr(nn.init, n) for n in _INIT_FUNCTIONS if hasattr(nn.init, n)}

    def skip(fn: Any) -> Any:
        def wrapper(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            return tensor if getattr(tensor, "is_meta", False) else fn(tensor, *args, **kwargs)

        return wrapper

    for n, fn in saved.items():
        setattr(nn.init, n, skip(fn))
    try:
        yield
    finally:
        for n, fn in saved.items():
            setattr(nn.init, n, fn)


def resolve_model(
    model_or_name: nn.Module | str | Path,
    input_size: Any = None,
    num_classes: int | None = None,
    device: str | torch.device | None = None,
) -> tuple[nn.Module, str, tuple[int, int, int]]:
    """A model, its display name and its (C, H, W) input from a module, a model name or a run folder.

    A model built by name is built on ``device`` (the CPU by default; :func:`summary` asks for the
    ``meta`` device, where building and running cost nothing because no values are computed).
    """
    size = parse_input_size(input_size)
    if isinstance(model_or_name, nn.Module):
        info = getattr(model_or_name, "info", None)
        default = tuple(info.input_size) if info is not None else None
        if default is None and (size is None or len(size) != 3):
            raise ConfigError(f"{type(model_or_name).__name__} does not declare its input size",
                              hint="pass input_size=(C, H, W)")  # fmt: skip
        name = getattr(info, "name", type(model_or_name).__name__)
        return model_or_name, name, _complete(size, default or (3, 1, 1))  # type: ignore[arg-type]
    target = str(model_or_name)
    if _is_run(target):
        from ..run import load_run

        run = load_run(target)
        if num_classes is not None and num_classes != run.meta.num_classes:
            raise ConfigError(f"--num-classes {num_classes} does not match the run's {run.meta.num_classes} classes",
                              hint="leave --num-classes out for a run folder")  # fmt: skip
        default = tuple(int(v) for v in run.meta.input_size)
        model = run.model if device is None else run.model.to(device)  # loaded (so checked), then moved
        return model, f"{run.meta.model} ({run.path.name})", _complete(size, default)  # type: ignore[arg-type]
    from ..models import create_model, model_entry

    if ("/" in target or target.startswith(".")) and ":" not in target:
        raise ConfigError(f"{target!r} is neither a run folder nor a model name",
                          hint="pass a folder holding best.safetensors, or a name from `cnnkit models`")  # fmt: skip
    if num_classes is None:
        num_classes = 1000
        if not target.startswith(("torchvision:", "timm:")):
            # Small-input models (digits, CIFAR) default to 10 classes, ImageNet-size ones to 1000.
            num_classes = 10 if model_entry(target).default_input[1] < 64 else 1000
    with torch.device(device or "cpu"), _no_init_on_meta():
        model = create_model(
            target, num_classes=num_classes, input_size=size[0] if size and len(size) == 1 else size
        )
    info = getattr(model, "info", None)
    full = tuple(info.input_size) if info is not None else _complete(size, (3, 224, 224))
    return model, target, full  # type: ignore[return-value]


def _dtype(dtype: str | torch.dtype | None, model: nn.Module) -> tuple[str, int]:
    if dtype is None:
        p = next(model.parameters(), None)
        d = p.dtype if p is not None and p.is_floating_point() else torch.float32
    elif isinstance(dtype, torch.dtype):
        d = dtype
    else:
        if dtype not in DTYPES:
            raise ConfigError(
                f"unknown dtype {dtype!r}", hint=suggest(dtype, ("float32", "float16", "bfloat16"))
            )
        d = DTYPES[dtype]
    return str(d).removeprefix("torch."), torch.empty((), dtype=d).element_size()


# -- building the table ------------------------------------------------------------------------------
def _counted(n: Node) -> bool:
    return n.kind in COUNTED_KINDS and not n.identity


def _is_layer(n: Node) -> bool:
    """A leaf module call or a functional operation (not a block)."""
    return n.module is None or n.leaf


def _build_rows(root: Node, input_size: tuple[int, int, int], depth: int | None, bpe: int) -> list[LayerRow]:
    """The visible rows: every layer call, with blocks at ``depth`` folded into one row each.

    Each parameter is counted in the first row that reaches it, so at any depth the rows add up to
    the totals (parameters, MACs and counted activations).
    """
    seen: set[int] = set()
    rows = [LayerRow("input", "Input", "input", 0, input_size, 0, 0, 0, 0, _prod(input_size), _prod(input_size),
                     _prod(input_size) * bpe, ReceptiveField())]  # fmt: skip

    def take(module: nn.Module | None, recurse: bool) -> tuple[int, int]:
        if module is None:
            return 0, 0
        trainable = frozen = 0
        for p in module.parameters(recurse=recurse):
            if id(p) in seen:
                continue  # shared or already counted at an earlier call
            seen.add(id(p))
            if p.requires_grad:
                trainable += p.numel()
            else:
                frozen += p.numel()
        return trainable, frozen

    def add(n: Node, folded: bool) -> None:
        tr, fr = take(n.module, recurse=folded)
        layers = [m for m in n.walk() if _is_layer(m)] if folded else [n]
        act = sum(m.out_elems for m in layers if _counted(m))
        notes = [f"{m.name}: {x}" if folded else x for m in layers for x in m.notes]
        note = notes[0] + (f"; +{len(notes) - 1} more" if len(notes) > 1 else "") if notes else ""
        rows.append(LayerRow(n.name or "(model)", n.type, "block" if folded and not n.leaf else n.kind, n.depth,
                             n.out_shape, tr + fr, tr, fr, sum(m.macs for m in layers), n.out_elems, act, act * bpe,
                             n.rf, note, folded and not n.leaf))  # fmt: skip

    def expand(n: Node) -> None:
        tr, fr = take(n.module, recurse=False)
        if tr + fr and n.module is not None:  # parameters a block holds itself (not in a child layer)
            rows.append(LayerRow(f"{n.name or '(model)'} (own)", n.type, "block", n.depth, n.out_shape, tr + fr, tr,
                                 fr, 0, n.out_elems, 0, 0, n.rf))  # fmt: skip
        for c in n.children:
            if _is_layer(c):
                add(c, folded=False)
            elif depth is not None and c.depth >= depth:
                add(c, folded=True)
            else:
                expand(c)

    if depth == 0:
        add(root, folded=True)
    else:
        expand(root)
    return rows


def _prod(shape: tuple[int, ...]) -> int:
    out = 1
    for v in shape:
        out *= int(v)
    return out


class _MetaUnsupported(Exception):
    """The forward pass failed on the meta device (retry on the CPU)."""


def _is_run(target: Any) -> bool:
    return Path(str(target)).is_dir() or Path(str(target), "best.safetensors").exists()


def _trace(model: nn.Module, name: str, size: tuple[int, int, int]) -> Tracer:
    """Run one zero image through ``model`` (eval mode, its device and dtype) under the tracer."""
    p = next(model.parameters(), None)
    device = p.device if p is not None else torch.device("cpu")
    run_dtype = p.dtype if p is not None and p.is_floating_point() else torch.float32
    modes = {m: m.training for m in model.modules()}  # restored one by one: submodules may differ
    model.eval()
    tracer = Tracer(model, (size[1], size[2]))
    try:
        tracer.run(torch.zeros(1, *size, device=device, dtype=run_dtype))
    except CnnkitError:
        raise
    except (RuntimeError, ValueError, IndexError, NotImplementedError, TypeError) as e:
        if device.type == "meta":
            raise _MetaUnsupported(str(e)) from e
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"{name} does not run on a {'x'.join(map(str, size))} input: {first}",
                         hint="check --input (channels and size) against `cnnkit models`") from e  # fmt: skip
    finally:
        for m, training in modes.items():
            m.training = training
    return tracer


def summary(
    model_or_name: nn.Module | str | Path,
    input_size: Any = None,
    batch: int = 1,
    depth: int | None = None,
    dtype: str | torch.dtype | None = None,
    num_classes: int | None = None,
) -> ModelSummary:
    """Per-layer shapes, parameters, MACs, activation memory and receptive fields of a model.

    ``model_or_name`` is an ``nn.Module``, a registered model name (built with ``num_classes``, default
    1000 for ImageNet-size models and 10 for small-input ones) or a run folder (its weights and input
    size). ``input_size`` is ``(C, H, W)``, ``(H, W)``, an int or a string like ``"3x224x224"``;
    by default the model's own. ``depth`` folds blocks deeper than that into one row (``None``: every
    layer). ``dtype`` sets the element size of the memory figures (default: the parameters' dtype).

    The counting pass runs one zero image in eval mode: a module or run folder in its own dtype on its
    own device; a model built by name on the ``meta`` device (shapes without arithmetic, so it is fast),
    falling back to the CPU if the forward pass cannot run there.
    """
    if not isinstance(batch, int) or batch < 1:
        raise ConfigError(f"batch must be a positive integer, got {batch!r}")
    if depth is not None and (not isinstance(depth, int) or depth < 0):
        raise ConfigError(f"depth must be a non-negative integer, got {depth!r}")
    # A model built by name or loaded from a run folder runs on the meta device: the same forward
    # code, shapes without arithmetic, so even VGG-16 at a large --input answers in a blink without
    # allocating its activations. If some operation has no meta kernel (or the forward needs real
    # values), it is rebuilt and run on the CPU. A module passed in runs where it is.
    by_name = not isinstance(model_or_name, nn.Module)
    model, name, size = resolve_model(
        model_or_name, input_size, num_classes, device="meta" if by_name else None
    )
    dtype_name, bpe = _dtype(dtype, model)
    try:
        tracer = _trace(model, name, size)
    except _MetaUnsupported as e:
        if not by_name:
            raise ModelError(
                f"{name} does not run on the meta device: {e}", hint="pass the model on the CPU"
            ) from e
        model, name, size = resolve_model(model_or_name, input_size, num_classes, device="cpu")
        tracer = _trace(model, name, size)
    root = tracer.root
    assert root is not None  # the model's own pre-hook always runs
    rows = _build_rows(root, size, depth, bpe)

    layers = [n for n in root.walk() if _is_layer(n)]
    params = list(model.parameters())
    trainable = sum(q.numel() for q in params if q.requires_grad)
    total = sum(q.numel() for q in params)
    in_elems = _prod(size)
    totals = Totals(
        params=total, trainable=trainable, frozen=total - trainable,
        params_not_run=total - sum(r.params for r in rows),
        macs=sum(n.macs for n in layers),
        activations=in_elems + sum(n.out_elems for n in layers if _counted(n)),
        all_outputs=in_elems + sum(n.out_elems for n in layers),
        bytes_per_element=bpe, batch=batch,
    )  # fmt: skip
    notes = []
    if totals.params_not_run:
        notes.append(f"{commas(totals.params_not_run)} parameters belong to layers the eval-mode forward pass "
                     "never calls (e.g. auxiliary classifiers); they are in the totals but in no row.")  # fmt: skip
    features_rf = tracer.features_rf
    if features_rf is None:
        spatial = [
            n.rf for n in layers if n.rf is not None and len(n.out_shape) == 3 and n.rf.kind != "global"
        ]
        features_rf = spatial[-1] if spatial else None
    return ModelSummary(name, size, batch, dtype_name, depth, rows, totals, features_rf, notes)
