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

The rules for each operation live in :mod:`cnnkit.analyze.ops` (MACs and receptive fields, with
the MAC conventions) and :mod:`cnnkit.analyze.meta_shapes` (output shapes on the ``meta`` device).
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

from .meta_shapes import meta_output
from .ops import RF_ATTR, handle, rf_of, tensors
from .rf import ReceptiveField

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
            t = next(tensors(out), None)
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
        outs = list(tensors(out))
        if not outs:
            return
        op = handle(self, name, args, kwargs, outs[0])
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
        rfs = [rf_of(t) for t in tensors((args, kwargs))]
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
                self.features_rf = rf_of(next(tensors(y), None))
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
        out = meta_output(name, args, kwargs)  # a meta tensor's result from its shape rule (fast)
        if out is None:
            out = func(*args, **kwargs)
        if not self.tracer.paused and (
            isinstance(out, Tensor) or (isinstance(out, (tuple, list)) and out and isinstance(out[0], Tensor))
        ):
            self.tracer.on_op(name or str(func), args, kwargs, out)
        return out
