"""The per-operation rules the tracer applies: what each torch operation does to MACs and receptive fields.

For every operation :mod:`cnnkit.analyze.trace` sees, :func:`handle` returns an :class:`Op`: the
output's :class:`~cnnkit.analyze.rf.ReceptiveField` (computed from the inputs' fields), the MACs and a
note when the output-size formula does not divide. (:mod:`cnnkit.analyze.meta_shapes` answers the
output shapes on the ``meta`` device.)

MAC conventions (one multiply-accumulate = 2 FLOPs), close to fvcore's so totals can be checked
against it:

==========================  =====================================================================
convolution                 ``out_elems * (C_in/groups) * kh * kw`` (bias additions not counted)
transposed convolution      ``in_elems * (C_out/groups) * kh * kw``
linear / matmul / einsum    one MAC per product summed (``in_elems * out_features`` for linear)
batch norm (inference)      2 per element with a learned scale and shift, 1 without (fvcore)
layer/group/instance norm   5 per element with affine, 4 without (fvcore's rough estimate)
local response norm         ``size`` per element (the sum of squares across the channel window)
average pooling             one add per element of each window (``out_elems * kh * kw``)
adaptive average pooling    one add per input element (fvcore)
upsampling                  1 (nearest) or 4 (bilinear) per output element (fvcore)
everything else             0: max pooling (comparisons), activations, dropout, add, concat, reshape
==========================  =====================================================================
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from torch import Tensor

from .formulas import SizeCheck
from .rf import ReceptiveField

if TYPE_CHECKING:
    from .trace import Tracer

RF_ATTR = "_cnnkit_rf"  # attribute holding a tensor's receptive field during the pass


@dataclass
class Op:
    """What an operation handler found: the output's receptive field, MACs, a size note."""

    rf: ReceptiveField | None
    macs: int = 0
    note: str = ""
    kind: str = ""  # conv/linear/pool/norm for layer-like operations, "" otherwise
    identity: bool = False


# -- argument helpers --------------------------------------------------------------------------------
def arg(args: tuple, kwargs: dict, i: int, name: str, default: Any = None) -> Any:
    """Argument ``i`` of a call, given by position or by ``name``."""
    if len(args) > i:
        return args[i]
    return kwargs.get(name, default)


def pair(v: Any, default: tuple[int, int]) -> tuple[int, int]:
    """A kernel/stride/padding argument as (h, w); ``default`` when it is absent."""
    if v is None or (isinstance(v, (tuple, list)) and len(v) == 0):
        return default
    if isinstance(v, (int, float)):
        return (int(v), int(v))
    t = tuple(int(a) for a in v)
    return (t[0], t[0]) if len(t) == 1 else (t[-2], t[-1])


def tensors(obj: Any) -> Iterator[Tensor]:
    """Tensors in an argument tree (lists of tensors for ``torch.cat``, DenseNet's feature lists)."""
    if isinstance(obj, Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            yield from tensors(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from tensors(o)


def rf_of(t: Any) -> ReceptiveField | None:
    return getattr(t, RF_ATTR, None) if isinstance(t, Tensor) else None


def _size_note(
    n: tuple[int, ...],
    kernel: tuple[int, int],
    pad_total: tuple[int, int],
    stride: tuple[int, int],
    out: tuple[int, ...],
) -> str:
    """The lecture's output-size formula for each axis whose windows do not tile the input exactly."""
    checks = [SizeCheck(int(n[i]), kernel[i], pad_total[i], stride[i], int(out[i])) for i in range(2)]
    bad = [c for c in checks if not c.divides]
    if not bad:
        return ""
    if len(bad) == 2 and bad[0] == bad[1]:
        return bad[0].note()
    return "; ".join(f"{'HW'[i]}: {c.note()}" for i, c in enumerate(checks) if not c.divides)


# -- operation handlers --------------------------------------------------------------------------------
Handler = Callable[["Tracer", str, tuple, dict, Tensor], Op]


def _generic(t: Tracer, name: str, args: tuple, kwargs: dict, out: Tensor) -> Op:
    """Element-wise ops, concatenation, reshapes: the union of the inputs' fields.

    If a 4D output changed its spatial size in a way no handler explains, the field is unknown.
    """
    ins = [x for x in tensors((args, kwargs)) if rf_of(x) is not None]
    rf = ReceptiveField.merge([rf_of(x) for x in ins], t.input_hw)
    if rf is not None and rf.kind == "local" and out.dim() == 4:
        spatial = [tuple(x.shape[-2:]) for x in ins if x.dim() >= 3]
        if spatial and tuple(out.shape[-2:]) not in spatial:
            rf = ReceptiveField.unknown()
    return Op(rf)


def _conv(t: Tracer, name: str, args: tuple, kwargs: dict, out: Tensor) -> Op:
    x, w = args[0], arg(args, kwargs, 1, "weight")
    macs = out.numel() * math.prod(w.shape[1:])
    if w.dim() != 4 or x.dim() not in (3, 4):  # conv1d/conv3d: counted, field not modelled
        return Op(t.merged((x,), {}), macs, kind="conv")
    k = (int(w.shape[2]), int(w.shape[3]))
    stride = pair(arg(args, kwargs, 3, "stride"), (1, 1))
    dil = pair(arg(args, kwargs, 5, "dilation"), (1, 1))
    keff = (dil[0] * (k[0] - 1) + 1, dil[1] * (k[1] - 1) + 1)
    pad = arg(args, kwargs, 4, "padding", 0)
    if pad == "valid":
        before, total = (0, 0), (0, 0)
    elif pad == "same":  # PyTorch puts the odd pixel of padding at the end
        total = (keff[0] - 1, keff[1] - 1)
        before = (total[0] // 2, total[1] // 2)
    else:
        before = pair(pad, (0, 0))
        total = (2 * before[0], 2 * before[1])
    rf = rf_of(x)
    rf = rf.window_op(keff, stride, before) if rf is not None else None
    note = _size_note(tuple(x.shape[-2:]), keff, total, stride, tuple(out.shape[-2:]))
    return Op(rf, macs, note, "conv")


def _conv_transpose(t: Tracer, name: str, args: tuple, kwargs: dict, out: Tensor) -> Op:
    x, w = args[0], arg(args, kwargs, 1, "weight")
    rf = ReceptiveField.unknown() if rf_of(x) is not None else None
    return Op(rf, x.numel() * math.prod(w.shape[1:]), kind="conv")


def _pool(t: Tracer, name: str, args: tuple, kwargs: dict, out: Tensor) -> Op:
    x = args[0]
    if name == "lp_pool2d":
        k = pair(arg(args, kwargs, 2, "kernel_size"), (1, 1))
        stride = pair(arg(args, kwargs, 3, "stride"), k)
        pad, dil = (0, 0), (1, 1)
    else:
        k = pair(arg(args, kwargs, 1, "kernel_size"), (1, 1))
        stride = pair(arg(args, kwargs, 2, "stride"), k)
        pad = pair(arg(args, kwargs, 3, "padding"), (0, 0))
        dil = pair(arg(args, kwargs, 4, "dilation"), (1, 1)) if "max" in name else (1, 1)
    if x.dim() < 3:
        return Op(t.merged((x,), {}), kind="pool")
    keff = (dil[0] * (k[0] - 1) + 1, dil[1] * (k[1] - 1) + 1)
    rf = rf_of(x)
    rf = rf.window_op(keff, stride, pad) if rf is not None else None
    note = _size_note(tuple(x.shape[-2:]), keff, (2 * pad[0], 2 * pad[1]), stride, tuple(out.shape[-2:]))
    macs = 0 if "max" in name else out.numel() * k[0] * k[1]
    return Op(rf, macs, note, "pool")


def _adaptive_pool(t: Tracer, name: str, args: tuple, kwargs: dict, out: Tensor) -> Op:
    x = args[0]
    macs = x.numel() if "avg" in name else 0
    rf = rf_of(x)
    n_in, n_out = tuple(x.shape[-2:]), tuple(out.shape[-2:])
    if rf is None or x.dim() < 3:
        return Op(rf, macs, kind="pool")
    if n_in == n_out:  # e.g. VGG's AdaptiveAvgPool2d(7) on a 7x7 map: nothing happens
        return Op(rf, macs, kind="pool", identity=True)
    if n_out == (1, 1):
        return Op(ReceptiveField.global_(t.input_hw), macs, kind="pool")
    note = ""
    kernel, stride = [], []
    for a, b in zip(n_in, n_out, strict=True):
        if a % b == 0:
            kernel.append(a // b)
            stride.append(a // b)
        else:
            # Window i covers [floor(i*a/b), ceil((i+1)*a/b)): sizes vary; use the largest.
            kernel.append(max(math.ceil((i + 1) * a / b) - math.floor(i * a / b) for i in range(b)))
            stride.append(a / b)
            note = f"adaptive pooling {a}->{b}: windows of varying size (receptive field approximate)"
    return Op(rf.window_op(tuple(kernel), tuple(stride), (0, 0)), macs, note, "pool")  # type: ignore[arg-type]


def _linear(t: Tracer, name: str, args: tuple, kwargs: dict, out: Tensor) -> Op:
    x, w = args[0], arg(args, kwargs, 1, "weight")
    macs = x.numel() * int(w.shape[0])
    rf = t.merged((x,), {})
    if rf is not None and x.dim() <= 2:
        # A fully connected layer on a vector mixes every position the vector came from.
        rf = ReceptiveField.global_(t.input_hw)
    return Op(rf, macs, kind="linear")  # on (N, H, W, C) it acts per position: field unchanged


def _matmul(t: Tracer, name: str, args: tuple, kwargs: dict, out: Tensor) -> Op:
    if name == "einsum":
        eq = args[0]
        ops = list(tensors(args[1:]))
        sizes: dict[str, int] = {}
        for term, op in zip(eq.replace(" ", "").split("->")[0].split(","), ops, strict=False):
            for ch, n in zip(term, op.shape, strict=False):  # ("..." not resolved: rough)
                sizes[ch] = int(n)
        macs = math.prod(sizes.values()) if len(ops) >= 2 else 0
    else:
        ops = list(tensors(args))
        if name == "addmm":
            ops = ops[1:]
        a, b = ops[0], ops[1]
        macs = a.numel() * (int(b.shape[-1]) if b.dim() >= 2 else 1)
    rf = t.merged(args, kwargs)
    if rf is not None:
        # 2D products mix whole feature vectors; batched ones may contract over positions: not modelled.
        rf = (
            ReceptiveField.global_(t.input_hw) if all(o.dim() <= 2 for o in ops) else ReceptiveField.unknown()
        )
    return Op(rf, macs, kind="linear")


def _norm(t: Tracer, name: str, args: tuple, kwargs: dict, out: Tensor) -> Op:
    x = args[0]
    if name == "batch_norm":
        affine = arg(args, kwargs, 3, "weight") is not None
        training = bool(arg(args, kwargs, 5, "training", False))
        macs = x.numel() * ((5 if affine else 4) if training else (2 if affine else 1))
    elif name == "local_response_norm":
        macs = x.numel() * int(arg(args, kwargs, 1, "size"))
    else:  # layer_norm, group_norm, instance_norm
        w = arg(args, kwargs, {"layer_norm": 2, "group_norm": 2, "instance_norm": 3}[name], "weight")
        macs = x.numel() * (5 if w is not None else 4)
    # Normalisation statistics are ignored for receptive fields (inference BN is per-channel affine).
    return Op(t.merged((x,), {}), macs, kind="norm")


def _interpolate(t: Tracer, name: str, args: tuple, kwargs: dict, out: Tensor) -> Op:
    mode = arg(args, kwargs, 3, "mode", "nearest")
    macs = out.numel() * {"nearest": 1, "bilinear": 4}.get(mode, 0)
    rf = ReceptiveField.unknown() if rf_of(args[0]) is not None else None
    return Op(rf, macs, kind="pool")


def _pad(t: Tracer, name: str, args: tuple, kwargs: dict, out: Tensor) -> Op:
    x, pad = args[0], list(arg(args, kwargs, 1, "pad", ()))
    rf = rf_of(x)
    if rf is None or x.dim() < 3:
        return Op(t.merged((x,), {}))
    # F.pad lists (left, right, top, bottom, front, back, ...) from the last axis backwards.
    before = (pad[2] if len(pad) >= 4 else 0, pad[0] if len(pad) >= 2 else 0)
    return Op(rf.pad(before))


def _getitem(t: Tracer, name: str, args: tuple, kwargs: dict, out: Tensor) -> Op:
    x, idx = args[0], args[1]
    rf = rf_of(x)
    if rf is None or not rf.is_local or x.dim() != 4:
        return _generic(t, name, args, kwargs, out)
    idx = idx if isinstance(idx, tuple) else (idx,)
    if Ellipsis in idx:
        i = idx.index(Ellipsis)
        idx = idx[:i] + (slice(None),) * (4 - len(idx) + 1) + idx[i + 1 :]
    idx = idx + (slice(None),) * (4 - len(idx))
    if len(idx) != 4 or not all(isinstance(s, slice) for s in idx):
        return _generic(t, name, args, kwargs, out)
    offset, step = [], []
    for axis, s in zip((2, 3), idx[2:], strict=True):
        start = s.start or 0
        if start < 0:
            start += x.shape[axis]
        offset.append(start)
        step.append(s.step or 1)
    return Op(rf.subsample(tuple(offset), tuple(step)))  # type: ignore[arg-type]


_REDUCTIONS = {"mean", "sum", "amax", "amin", "max", "min", "std", "var", "logsumexp", "norm", "prod", "nansum",
               "nanmean", "median"}  # fmt: skip


def _reduce(t: Tracer, name: str, args: tuple, kwargs: dict, out: Tensor) -> Op:
    x = args[0]
    if len(args) > 1 and isinstance(args[1], Tensor):  # torch.max(a, b): element-wise
        return _generic(t, name, args, kwargs, out)
    rf = rf_of(x)
    if rf is None:
        return Op(None)
    dim = arg(args, kwargs, 2 if name == "norm" else 1, "dim")
    if dim is None:
        return Op(ReceptiveField.global_(t.input_hw))  # a full reduction sees everything
    dims = {d % x.dim() for d in (dim if isinstance(dim, (tuple, list)) else (dim,))}
    if x.dim() == 4 and {2, 3} <= dims:  # x.mean((2, 3)): global average pooling
        return Op(ReceptiveField.global_(t.input_hw), x.numel() if name == "mean" else 0, kind="pool")
    if x.dim() == 4 and dims & {2, 3}:
        return Op(ReceptiveField.unknown())
    return Op(rf)


_HANDLERS: dict[str, Handler] = {
    "conv2d": _conv, "conv1d": _conv, "conv3d": _conv,
    "conv_transpose1d": _conv_transpose, "conv_transpose2d": _conv_transpose, "conv_transpose3d": _conv_transpose,
    "max_pool2d": _pool, "max_pool2d_with_indices": _pool, "avg_pool2d": _pool, "lp_pool2d": _pool,
    "adaptive_avg_pool2d": _adaptive_pool, "adaptive_max_pool2d": _adaptive_pool,
    "adaptive_max_pool2d_with_indices": _adaptive_pool,
    "linear": _linear,
    "matmul": _matmul, "mm": _matmul, "bmm": _matmul, "addmm": _matmul, "einsum": _matmul,
    "batch_norm": _norm, "layer_norm": _norm, "group_norm": _norm, "instance_norm": _norm,
    "local_response_norm": _norm,
    "interpolate": _interpolate, "upsample": _interpolate,
    "pad": _pad,
    "__getitem__": _getitem,
    **{r: _reduce for r in _REDUCTIONS},
}  # fmt: skip


def handle(t: Tracer, name: str, args: tuple, kwargs: dict, out: Tensor) -> Op:
    """What operation ``name`` (called with ``args``/``kwargs``, first output ``out``) did."""
    return _HANDLERS.get(name, _generic)(t, name, args, kwargs, out)
