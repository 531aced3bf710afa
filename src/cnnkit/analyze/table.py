"""``cnnkit.summary``: the lectures' per-layer table for any model (how it is measured and built).

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

:mod:`cnnkit.analyze.result` holds what :func:`summary` returns (rows, totals) and how it is printed
and exported.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CnnkitError, ConfigError, ModelError, suggest
from .fmt import commas
from .result import LayerRow, ModelSummary, Totals
from .rf import ReceptiveField
from .trace import Node, Tracer

COUNTED_KINDS = ("conv", "linear", "pool")  # layers whose output the lecture's table lists

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32, "fp32": torch.float32,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float64": torch.float64,
}  # fmt: skip


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
    from ..resolve import run_or_model

    target = str(model_or_name)
    run = run_or_model(target)
    if not isinstance(run, str):
        if num_classes is not None and num_classes != run.meta.num_classes:
            raise ConfigError(f"--num-classes {num_classes} does not match the run's {run.meta.num_classes} classes",
                              hint="leave --num-classes out for a run folder")  # fmt: skip
        default = tuple(int(v) for v in run.meta.input_size)
        model = run.model if device is None else run.model.to(device)  # loaded (so checked), then moved
        return model, f"{run.meta.model} ({run.path.name})", _complete(size, default)  # type: ignore[arg-type]
    from ..models import create_model, model_entry

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
