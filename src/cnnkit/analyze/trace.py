"""One forward pass that records every layer call, its output, MACs and receptive field.

Two instruments watch the pass:

* **module hooks** (a pre-hook and a forward hook on every module) say *where* we are: which layer
  runs, inside which block, and what it returned;
* a **torch function mode** (:class:`torch.overrides.TorchFunctionMode`) sees every tensor operation,
  including the functional ones written between modules (ResNet's ``out + identity``, Inception's and
  DenseNet's ``torch.cat``, an SE block's ``x * gate``, ``F.adaptive_avg_pool2d`` in a ``forward``).
  Module hooks alone cannot see those, yet they decide how receptive fields combine.

Each operation's output tensor gets its :class:`~cnnkit.analyze.rf.ReceptiveField` attached as an
attribute, computed from its inputs' fields, so branches and merges are followed through the real
graph. Counting per *operation* (``conv2d``, ``linear``, ``batch_norm``...) rather than per module type
also covers custom layers that call ``F.conv2d`` themselves.

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

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from .formulas import SizeCheck
from .rf import ReceptiveField

RF_ATTR = "_cnnkit_rf"  # attribute holding a tensor's receptive field during the pass

# Layer categories. Outputs of conv, linear and pool layers are the feature maps the lectures'
# tables list (see table.COUNTED_KINDS).
_MODULE_KINDS: list[tuple[tuple[type, ...], str]] = [
    ((nn.modules.conv._ConvNd,), "conv"),
    ((nn.Linear, nn.Bilinear), "linear"),
    ((nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd, nn.modules.pooling._AdaptiveAvgPoolNd,
      nn.modules.pooling._AdaptiveMaxPoolNd, nn.modules.pooling._LPPoolNd), "pool"),
    ((nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm, nn.CrossMapLRN2d), "norm"),
    ((nn.modules.dropout._DropoutNd,), "dropout"),
    ((nn.Flatten, nn.Unflatten, nn.Identity), "reshape"),
    ((nn.modules.padding._ConstantPadNd, nn.modules.padding._ReflectionPadNd,
      nn.modules.padding._ReplicationPadNd), "pad"),
]  # fmt: skip
_KIND_PRIORITY = ("conv", "linear", "pool", "norm")  # what a custom layer counts as, by the ops it runs


def module_kind(m: nn.Module) -> str:
    """``conv``, ``linear``, ``pool``, ``norm``, ``act``, ``dropout``, ``reshape``, ``pad`` or ``other``."""
    for types, kind in _MODULE_KINDS:
        if isinstance(m, types):
            return kind
    if type(m).__module__ == "torch.nn.modules.activation":
        return "act"
    return "other"


@dataclass
class Node:
    """One call of a module (or one functional layer-like operation run directly in a block)."""

    name: str
    type: str
    kind: str
    depth: int
    seq: int  # execution order of the call's start
    parent: Node | None
    module: nn.Module | None  # None for a functional operation
    leaf: bool
    children: list[Node] = field(default_factory=list)
    out_shape: tuple[int, ...] = ()  # without the batch dimension
    rf: ReceptiveField | None = None
    macs: int = 0  # MACs of the operations run directly in this call (leaf or functional node)
    notes: list[str] = field(default_factory=list)
    op_kinds: set[str] = field(default_factory=set)
    identity: bool = False  # an adaptive pooling that left the size unchanged (a no-op)

    @property
    def out_elems(self) -> int:
        return math.prod(self.out_shape) if self.out_shape else 0

    def walk(self) -> Iterator[Node]:
        """This node and all below it, in execution order."""
        yield self
        for c in self.children:
            yield from c.walk()


@dataclass
class _Op:
    """What an operation handler found: the output's receptive field, MACs, a size note."""

    rf: ReceptiveField | None
    macs: int = 0
    note: str = ""
    kind: str = ""  # conv/linear/pool/norm for layer-like operations, "" otherwise
    identity: bool = False


# -- argument helpers --------------------------------------------------------------------------------
def _arg(args: tuple, kwargs: dict, i: int, name: str, default: Any = None) -> Any:
    if len(args) > i:
        return args[i]
    return kwargs.get(name, default)


def _pair(v: Any, default: tuple[int, int]) -> tuple[int, int]:
    if v is None or (isinstance(v, (tuple, list)) and len(v) == 0):
        return default
    if isinstance(v, (int, float)):
        return (int(v), int(v))
    t = tuple(int(a) for a in v)
    return (t[0], t[0]) if len(t) == 1 else (t[-2], t[-1])


def _tensors(obj: Any) -> Iterator[Tensor]:
    """Tensors in an argument tree (lists of tensors for ``torch.cat``, DenseNet's feature lists)."""
    if isinstance(obj, Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            yield from _tensors(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _tensors(o)


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


class Tracer:
    """Runs one forward pass with hooks and the function mode, and keeps the call tree."""

    def __init__(self, model: nn.Module, input_hw: tuple[int, int]) -> None:
        self.model = model
        self.input_hw = (float(input_hw[0]), float(input_hw[1]))
        self.names = {m: n for n, m in model.named_modules(remove_duplicate=False)}
        self.stack: list[Node] = []
        self.calls: dict[str, int] = {}
        self.seq = 0
        self.paused = False
        self.root: Node | None = None
        self.features_rf: ReceptiveField | None = None

    # -- module hooks -------------------------------------------------------------------------------
    def _pre(self, module: nn.Module, args: tuple) -> None:
        self.paused = True
        name = self.names.get(module, type(module).__name__)
        n = self.calls[name] = self.calls.get(name, 0) + 1
        parent = self.stack[-1] if self.stack else None
        leaf = next(iter(module.children()), None) is None
        label = name if n == 1 else f"{name} ({n})"  # a module called twice (ResNet's shared ReLU)
        node = Node(label, type(module).__name__, module_kind(module), 0 if not name else name.count(".") + 1,
                    self._next(), parent, module, leaf)  # fmt: skip
        if parent is None:
            self.root = node
        else:
            parent.children.append(node)
        self.stack.append(node)
        self.paused = False

    def _post(self, module: nn.Module, args: tuple, out: Any) -> None:
        self.paused = True
        while self.stack and self.stack[-1].module is not module:
            self.stack.pop()  # a call that raised inside; keep the stack consistent
        node = self.stack.pop() if self.stack else None
        if node is not None:
            t = next(_tensors(out), None)
            if t is not None:
                node.out_shape = tuple(t.shape[1:])
                node.rf = rf_of(t)
            if node.leaf and node.kind == "other":
                node.kind = next((k for k in _KIND_PRIORITY if k in node.op_kinds), "other")
        self.paused = False

    def _next(self) -> int:
        self.seq += 1
        return self.seq

    # -- operations ---------------------------------------------------------------------------------
    def on_op(self, name: str, args: tuple, kwargs: dict, out: Any) -> None:
        outs = list(_tensors(out))
        if not outs:
            return
        handler = _HANDLERS.get(name, _generic)
        op = handler(self, name, args, kwargs, outs[0])
        if op.rf is not None:
            for o in outs:
                with contextlib.suppress(AttributeError, RuntimeError):  # exotic tensor subclasses
                    setattr(o, RF_ATTR, op.rf)
        if not self.stack:
            return
        top = self.stack[-1]
        if top.leaf:
            top.macs += op.macs
            if op.note and op.note not in top.notes:
                top.notes.append(op.note)
            if op.kind:
                top.op_kinds.add(op.kind)
            top.identity = top.identity or op.identity
        elif op.kind or op.macs:
            # A layer-like operation written directly in a block's forward gets its own row.
            fname = f"{top.name}.{name}()" if top.name else f"{name}()"
            node = Node(fname, f"F.{name}", op.kind or "other", top.depth + 1, self._next(), top, None, True,
                        out_shape=tuple(outs[0].shape[1:]), rf=op.rf, macs=op.macs,
                        notes=[op.note] if op.note else [], identity=op.identity)  # fmt: skip
            top.children.append(node)

    def merged(self, args: tuple, kwargs: dict) -> ReceptiveField | None:
        rfs = [rf_of(t) for t in _tensors((args, kwargs))]
        return ReceptiveField.merge(rfs, self.input_hw)

    # -- running --------------------------------------------------------------------------------------
    @torch.no_grad()
    def run(self, x: Tensor) -> Any:
        setattr(x, RF_ATTR, ReceptiveField())
        handles = []
        for m in self.model.modules():
            handles.append(m.register_forward_pre_hook(self._pre))
            handles.append(m.register_forward_hook(self._post))
        # The RF of forward_features' output is "the final conv features" (compare-arch shows it).
        patched = hasattr(self.model, "forward_features") and "forward_features" not in vars(self.model)
        if patched:
            original = self.model.forward_features

            def features(*a: Any, **k: Any) -> Any:
                y = original(*a, **k)
                self.features_rf = rf_of(next(_tensors(y), None))
                return y

            self.model.forward_features = features  # type: ignore[method-assign]
        try:
            with _Mode(self):
                return self.model(x)
        finally:
            for h in handles:
                h.remove()
            if patched:
                del self.model.forward_features


def _same_shape(args: tuple, kwargs: dict) -> tuple[int, ...]:
    return tuple(args[0].shape)


def _linear_shape(args: tuple, kwargs: dict) -> tuple[int, ...] | None:
    w = _arg(args, kwargs, 1, "weight")
    if args[0].dim() < 1 or w.dim() != 2 or int(args[0].shape[-1]) != int(w.shape[1]):
        return None  # features and weights disagree (a run's model at another --input): the op raises
    return (*args[0].shape[:-1], int(w.shape[0]))


def _cat_shape(args: tuple, kwargs: dict) -> tuple[int, ...]:
    ts = [t for t in args[0] if t.dim() > 1 or t.numel() > 0]  # cat skips empty 1D tensors
    dim = int(_arg(args, kwargs, 1, "dim", 0)) % ts[0].dim()
    shape = list(ts[0].shape)
    shape[dim] = sum(int(t.shape[dim]) for t in ts)
    return tuple(shape)


def _broadcast_shape(args: tuple, kwargs: dict) -> tuple[int, ...] | None:
    """NumPy broadcasting (``torch.broadcast_shapes`` would import sympy); None if the shapes clash."""
    shapes = [tuple(int(d) for d in t.shape) for t in _tensors(args)]
    n = max(len(sh) for sh in shapes)
    out = []
    for i in range(n):
        sizes = {sh[len(sh) - n + i] for sh in shapes if len(sh) - n + i >= 0} - {1}
        if len(sizes) > 1:
            return None  # the real op raises the proper error
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


def _adaptive_shape(args: tuple, kwargs: dict) -> tuple[int, ...] | None:
    x, size = args[0], _arg(args, kwargs, 1, "output_size")
    if min(x.shape[-2:]) < 1:
        return None
    size = (size, size) if isinstance(size, int) else tuple(size)
    return (
        *x.shape[:-2],
        *(int(n) if s is None else int(s) for s, n in zip(size, x.shape[-2:], strict=True)),
    )


def _conv_shape(args: tuple, kwargs: dict) -> tuple[int, ...] | None:
    x, w = args[0], _arg(args, kwargs, 1, "weight")
    pad = _arg(args, kwargs, 4, "padding", 0)
    if x.dim() != 4 or w.dim() != 4 or isinstance(pad, str):
        return None  # let the op's own meta kernel answer
    if int(x.shape[1]) != int(w.shape[1]) * int(_arg(args, kwargs, 6, "groups", 1)):
        return None  # wrong number of input channels: the op raises the proper error
    stride = _pair(_arg(args, kwargs, 3, "stride"), (1, 1))
    dil = _pair(_arg(args, kwargs, 5, "dilation"), (1, 1))
    p = _pair(pad, (0, 0))
    hw = [
        (int(x.shape[2 + i]) + 2 * p[i] - dil[i] * (int(w.shape[2 + i]) - 1) - 1) // stride[i] + 1
        for i in range(2)
    ]
    return (int(x.shape[0]), int(w.shape[0]), *hw) if min(hw) >= 1 else None  # too small: let the op raise


def _pooled(n: int, k: int, s: int, p: int, d: int, ceil: bool) -> int:
    out = (n + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil else 0)) // s + 1
    if ceil and (out - 1) * s >= n + p:
        out -= 1
    return out


def _max_pool_shape(args: tuple, kwargs: dict) -> tuple[int, ...] | None:
    x = args[0]
    if x.dim() != 4 or _arg(args, kwargs, 6, "return_indices", False):
        return None
    k = _pair(_arg(args, kwargs, 1, "kernel_size"), (1, 1))
    stride = _pair(_arg(args, kwargs, 2, "stride"), k)
    pad = _pair(_arg(args, kwargs, 3, "padding"), (0, 0))
    dil = _pair(_arg(args, kwargs, 4, "dilation"), (1, 1))
    ceil = bool(_arg(args, kwargs, 5, "ceil_mode", False))
    hw = [_pooled(int(x.shape[2 + i]), k[i], stride[i], pad[i], dil[i], ceil) for i in range(2)]
    return (*x.shape[:2], *hw) if min(hw) >= 1 else None


def _avg_pool_shape(args: tuple, kwargs: dict) -> tuple[int, ...] | None:
    x = args[0]
    if x.dim() != 4:
        return None
    k = _pair(_arg(args, kwargs, 1, "kernel_size"), (1, 1))
    stride = _pair(_arg(args, kwargs, 2, "stride"), k)
    pad = _pair(_arg(args, kwargs, 3, "padding"), (0, 0))
    ceil = bool(_arg(args, kwargs, 4, "ceil_mode", False))
    hw = [_pooled(int(x.shape[2 + i]), k[i], stride[i], pad[i], 1, ceil) for i in range(2)]
    return (*x.shape[:2], *hw) if min(hw) >= 1 else None


# Element-wise ops (output = broadcast of the inputs) seen in CNN forwards.
_ELEMENTWISE = frozenset({
    "relu", "relu_", "relu6", "leaky_relu", "leaky_relu_", "elu", "elu_", "selu", "celu", "gelu", "silu", "mish",
    "hardswish", "hardsigmoid", "hardtanh", "hardtanh_", "sigmoid", "sigmoid_", "tanh", "tanh_", "softplus",
    "softmax", "log_softmax", "dropout", "dropout2d", "alpha_dropout", "feature_alpha_dropout",
    "add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_", "__add__", "__radd__", "__iadd__", "__sub__",
    "__rsub__", "__isub__", "__mul__", "__rmul__", "__imul__", "__truediv__", "__rtruediv__", "__itruediv__",
    "pow", "__pow__", "neg", "exp", "abs", "sqrt", "rsqrt", "clamp", "clamp_", "clip",
})  # fmt: skip


def _in_place(name: str) -> bool:
    """``add_``, ``relu_``, ``__iadd__``: ops that return their (modified) first argument."""
    if name.startswith("__"):
        return name.startswith("__i")
    return name.endswith("_")


# Output shapes of the ops whose meta kernels are slow to reach (see _Mode).
_META_SHAPES: dict[str, Callable[[tuple, dict], tuple[int, ...] | None]] = {
    "batch_norm": _same_shape, "instance_norm": _same_shape, "layer_norm": _same_shape,
    "group_norm": _same_shape, "linear": _linear_shape, "cat": _cat_shape, "concat": _cat_shape,
    "concatenate": _cat_shape, "adaptive_avg_pool2d": _adaptive_shape, "local_response_norm": _same_shape,
    "conv2d": _conv_shape, "max_pool2d": _max_pool_shape, "avg_pool2d": _avg_pool_shape,
    **{n: _broadcast_shape for n in _ELEMENTWISE},
}  # fmt: skip


class _Mode(TorchFunctionMode):
    """Sends every torch operation's result to the tracer (inside, the mode is off: no recursion)."""

    def __init__(self, tracer: Tracer) -> None:
        super().__init__()
        self.tracer = tracer

    def __torch_function__(
        self, func: Callable, types: Iterable[type], args: tuple = (), kwargs: dict | None = None
    ):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        shape_fn = _META_SHAPES.get(name)
        first = next(_tensors(args[:1]), None) if shape_fn is not None else None
        shape = shape_fn(args, kwargs) if first is not None and first.is_meta else None  # type: ignore[misc]
        if shape is not None:
            # A meta tensor has no values: the result is an empty tensor of the right shape (an in-place
            # op returns its input). The ops' own meta kernels are Python functions whose first use
            # imports torch._dynamo or sympy (seconds of start-up; the summary itself takes milliseconds).
            out = first if _in_place(name) else first.new_empty(shape)  # type: ignore[union-attr]
        else:
            out = func(*args, **kwargs)
        if not self.tracer.paused and (
            isinstance(out, Tensor) or (isinstance(out, (tuple, list)) and out and isinstance(out[0], Tensor))
        ):
            self.tracer.on_op(name or str(func), args, kwargs, out)
        return out


# -- operation handlers --------------------------------------------------------------------------------
Handler = Callable[[Tracer, str, tuple, dict, Tensor], _Op]


def _generic(t: Tracer, name: str, args: tuple, kwargs: dict, out: Tensor) -> _Op:
    """Element-wise ops, concatenation, reshapes: the union of the inputs' fields.

    If a 4D output changed its spatial size in a way no handler explains, the field is unknown.
    """
    ins = [x for x in _tensors((args, kwargs)) if rf_of(x) is not None]
    rf = ReceptiveField.merge([rf_of(x) for x in ins], t.input_hw)
    if rf is not None and rf.kind == "local" and out.dim() == 4:
        spatial = [tuple(x.shape[-2:]) for x in ins if x.dim() >= 3]
        if spatial and tuple(out.shape[-2:]) not in spatial:
            rf = ReceptiveField.unknown()
    return _Op(rf)


def _conv(t: Tracer, name: str, args: tuple, kwargs: dict, out: Tensor) -> _Op:
    x, w = args[0], _arg(args, kwargs, 1, "weight")
    macs = out.numel() * math.prod(w.shape[1:])
    if w.dim() != 4 or x.dim() not in (3, 4):  # conv1d/conv3d: counted, field not modelled
        return _Op(t.merged((x,), {}), macs, kind="conv")
    k = (int(w.shape[2]), int(w.shape[3]))
    stride = _pair(_arg(args, kwargs, 3, "stride"), (1, 1))
    dil = _pair(_arg(args, kwargs, 5, "dilation"), (1, 1))
    keff = (dil[0] * (k[0] - 1) + 1, dil[1] * (k[1] - 1) + 1)
    pad = _arg(args, kwargs, 4, "padding", 0)
    if pad == "valid":
        before, total = (0, 0), (0, 0)
    elif pad == "same":  # PyTorch puts the odd pixel of padding at the end
        total = (keff[0] - 1, keff[1] - 1)
        before = (total[0] // 2, total[1] // 2)
    else:
        before = _pair(pad, (0, 0))
        total = (2 * before[0], 2 * before[1])
    rf = rf_of(x)
    rf = rf.window_op(keff, stride, before) if rf is not None else None
    note = _size_note(tuple(x.shape[-2:]), keff, total, stride, tuple(out.shape[-2:]))
    return _Op(rf, macs, note, "conv")


def _conv_transpose(t: Tracer, name: str, args: tuple, kwargs: dict, out: Tensor) -> _Op:
    x, w = args[0], _arg(args, kwargs, 1, "weight")
    rf = ReceptiveField.unknown() if rf_of(x) is not None else None
    return _Op(rf, x.numel() * math.prod(w.shape[1:]), kind="conv")


def _pool(t: Tracer, name: str, args: tuple, kwargs: dict, out: Tensor) -> _Op:
    x = args[0]
    if name == "lp_pool2d":
        k = _pair(_arg(args, kwargs, 2, "kernel_size"), (1, 1))
        stride = _pair(_arg(args, kwargs, 3, "stride"), k)
        pad, dil = (0, 0), (1, 1)
    else:
        k = _pair(_arg(args, kwargs, 1, "kernel_size"), (1, 1))
        stride = _pair(_arg(args, kwargs, 2, "stride"), k)
        pad = _pair(_arg(args, kwargs, 3, "padding"), (0, 0))
        dil = _pair(_arg(args, kwargs, 4, "dilation"), (1, 1)) if "max" in name else (1, 1)
    if x.dim() < 3:
        return _Op(t.merged((x,), {}), kind="pool")
    keff = (dil[0] * (k[0] - 1) + 1, dil[1] * (k[1] - 1) + 1)
    rf = rf_of(x)
    rf = rf.window_op(keff, stride, pad) if rf is not None else None
    note = _size_note(tuple(x.shape[-2:]), keff, (2 * pad[0], 2 * pad[1]), stride, tuple(out.shape[-2:]))
    macs = 0 if "max" in name else out.numel() * k[0] * k[1]
    return _Op(rf, macs, note, "pool")


def _adaptive_pool(t: Tracer, name: str, args: tuple, kwargs: dict, out: Tensor) -> _Op:
    x = args[0]
    macs = x.numel() if "avg" in name else 0
    rf = rf_of(x)
    n_in, n_out = tuple(x.shape[-2:]), tuple(out.shape[-2:])
    if rf is None or x.dim() < 3:
        return _Op(rf, macs, kind="pool")
    if n_in == n_out:  # e.g. VGG's AdaptiveAvgPool2d(7) on a 7x7 map: nothing happens
        return _Op(rf, macs, kind="pool", identity=True)
    if n_out == (1, 1):
        return _Op(ReceptiveField.global_(t.input_hw), macs, kind="pool")
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
    return _Op(rf.window_op(tuple(kernel), tuple(stride), (0, 0)), macs, note, "pool")  # type: ignore[arg-type]


def _linear(t: Tracer, name: str, args: tuple, kwargs: dict, out: Tensor) -> _Op:
    x, w = args[0], _arg(args, kwargs, 1, "weight")
    macs = x.numel() * int(w.shape[0])
    rf = t.merged((x,), {})
    if rf is not None and x.dim() <= 2:
        # A fully connected layer on a vector mixes every position the vector came from.
        rf = ReceptiveField.global_(t.input_hw)
    return _Op(rf, macs, kind="linear")  # on (N, H, W, C) it acts per position: field unchanged


def _matmul(t: Tracer, name: str, args: tuple, kwargs: dict, out: Tensor) -> _Op:
    if name == "einsum":
        eq = args[0]
        ops = list(_tensors(args[1:]))
        sizes: dict[str, int] = {}
        for term, op in zip(eq.replace(" ", "").split("->")[0].split(","), ops, strict=False):
            for ch, n in zip(term, op.shape, strict=False):  # ("..." not resolved: rough)
                sizes[ch] = int(n)
        macs = math.prod(sizes.values()) if len(ops) >= 2 else 0
    else:
        ops = list(_tensors(args))
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
    return _Op(rf, macs, kind="linear")


def _norm(t: Tracer, name: str, args: tuple, kwargs: dict, out: Tensor) -> _Op:
    x = args[0]
    if name == "batch_norm":
        affine = _arg(args, kwargs, 3, "weight") is not None
        training = bool(_arg(args, kwargs, 5, "training", False))
        macs = x.numel() * ((5 if affine else 4) if training else (2 if affine else 1))
    elif name == "local_response_norm":
        macs = x.numel() * int(_arg(args, kwargs, 1, "size"))
    else:  # layer_norm, group_norm, instance_norm
        w = _arg(args, kwargs, {"layer_norm": 2, "group_norm": 2, "instance_norm": 3}[name], "weight")
        macs = x.numel() * (5 if w is not None else 4)
    # Normalisation statistics are ignored for receptive fields (inference BN is per-channel affine).
    return _Op(t.merged((x,), {}), macs, kind="norm")


def _interpolate(t: Tracer, name: str, args: tuple, kwargs: dict, out: Tensor) -> _Op:
    mode = _arg(args, kwargs, 3, "mode", "nearest")
    macs = out.numel() * {"nearest": 1, "bilinear": 4}.get(mode, 0)
    rf = ReceptiveField.unknown() if rf_of(args[0]) is not None else None
    return _Op(rf, macs, kind="pool")


def _pad(t: Tracer, name: str, args: tuple, kwargs: dict, out: Tensor) -> _Op:
    x, pad = args[0], list(_arg(args, kwargs, 1, "pad", ()))
    rf = rf_of(x)
    if rf is None or x.dim() < 3:
        return _Op(t.merged((x,), {}))
    # F.pad lists (left, right, top, bottom, front, back, ...) from the last axis backwards.
    before = (pad[2] if len(pad) >= 4 else 0, pad[0] if len(pad) >= 2 else 0)
    return _Op(rf.pad(before))


def _getitem(t: Tracer, name: str, args: tuple, kwargs: dict, out: Tensor) -> _Op:
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
    return _Op(rf.subsample(tuple(offset), tuple(step)))  # type: ignore[arg-type]


_REDUCTIONS = {"mean", "sum", "amax", "amin", "max", "min", "std", "var", "logsumexp", "norm", "prod", "nansum",
               "nanmean", "median"}  # fmt: skip


def _reduce(t: Tracer, name: str, args: tuple, kwargs: dict, out: Tensor) -> _Op:
    x = args[0]
    if len(args) > 1 and isinstance(args[1], Tensor):  # torch.max(a, b): element-wise
        return _generic(t, name, args, kwargs, out)
    rf = rf_of(x)
    if rf is None:
        return _Op(None)
    dim = _arg(args, kwargs, 2 if name == "norm" else 1, "dim")
    if dim is None:
        return _Op(ReceptiveField.global_(t.input_hw))  # a full reduction sees everything
    dims = {d % x.dim() for d in (dim if isinstance(dim, (tuple, list)) else (dim,))}
    if x.dim() == 4 and {2, 3} <= dims:  # x.mean((2, 3)): global average pooling
        return _Op(ReceptiveField.global_(t.input_hw), x.numel() if name == "mean" else 0, kind="pool")
    if x.dim() == 4 and dims & {2, 3}:
        return _Op(ReceptiveField.unknown())
    return _Op(rf)


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
