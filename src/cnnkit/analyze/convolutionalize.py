"""Convolutions can mimic fully connected layers (seed 001): a classifier as a sliding window.

A fully connected layer reading a flattened ``C x h x w`` map is a convolution with ``h x w`` kernels
(its weight reshaped, nothing learnt again), and every later fully connected layer is a ``1 x 1``
convolution. :func:`convolutionalize` rewrites a trained model's head that way, so the same network
runs over an image of any larger size in one pass and returns a map of class scores, one cell per
window position (OverFeat, YOLO's "predict for each cell of a feature map"). At the training size
the map is ``1 x 1`` and equals the original logits.

The head is read with ``torch.fx`` as a chain of operations. Adaptive pooling becomes the fixed
pooling it performs at the training size (AlexNet's 3 -> 2 pooling is a 2x2 window at stride 1; a
global average pool becomes an average over a window the size of the training feature map); the
features must be local (no squeeze-and-excitation gate, attention or spatial transformer, which look
at the whole image: checked with :mod:`cnnkit.analyze`'s receptive fields). Anything else raises
:class:`~cnnkit.errors.ModelError` naming the operation.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from ..errors import ModelError
from .rf import ReceptiveField

_HINT = ("class maps need a head of fully connected layers on a flattened feature map, or a fully "
         "convolutional model (see `cnnkit models`: lenet5, alexnet, vgg11, resnet20, ...)")  # fmt: skip

# Element-wise operations: the same on a vector and on every cell of a map.
_ELEMENTWISE_MODULES = (
    nn.ReLU, nn.ReLU6, nn.Tanh, nn.Sigmoid, nn.GELU, nn.SiLU, nn.LeakyReLU, nn.ELU, nn.Hardswish,
    nn.Hardsigmoid, nn.Hardtanh, nn.Mish, nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout,
)  # fmt: skip
_ELEMENTWISE_FUNCTIONS: set[Callable[..., Any]] = {
    F.relu, torch.relu, F.relu6, torch.tanh, F.tanh, torch.sigmoid, F.sigmoid, F.gelu, F.silu, F.leaky_relu,
    F.elu, F.hardswish, F.hardtanh, F.dropout, operator.mul, operator.add, operator.sub, operator.truediv,
    torch.mul, torch.add,
}  # fmt: skip
_ELEMENTWISE_METHODS = {"relu", "tanh", "sigmoid", "mul", "add", "sub", "div", "contiguous"}
_FLATTEN_METHODS = {"flatten", "view", "reshape"}


class _Apply(nn.Module):
    """A traced call kept as a module (``F.relu(x)``, ``1.7 * x``): ``args`` with the map at ``pos``."""

    def __init__(self, fn: Callable[..., Any] | str, args: tuple, kwargs: dict, pos: int = 0) -> None:
        super().__init__()
        self.fn, self.args, self.kwargs, self.pos = fn, args, kwargs, pos

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        args = (*self.args[: self.pos], x, *self.args[self.pos + 1 :])
        if isinstance(self.fn, str):  # a tensor method: x.relu()
            return getattr(args[0], self.fn)(*args[1:], **self.kwargs)
        return self.fn(*args, **self.kwargs)

    def extra_repr(self) -> str:
        return self.fn if isinstance(self.fn, str) else getattr(self.fn, "__name__", str(self.fn))


class RBFMap(nn.Module):
    """LeNet-5's Euclidean RBF output on every cell: ``-sum_c (x_c - w_kc)^2`` as a 1x1 convolution.

    ``|x - w|^2 = |x|^2 - 2 w.x + |w|^2``: the cross term is a 1x1 convolution with the prototypes.
    """

    def __init__(self, prototypes: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("prototypes", prototypes.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.prototypes
        cross = F.conv2d(x, w[:, :, None, None])
        return 2 * cross - (x * x).sum(1, keepdim=True) - (w * w).sum(1).view(1, -1, 1, 1)


def _rbf_converter(module: nn.Module) -> nn.Module:
    return RBFMap(module.prototypes)


def _converters() -> dict[type, Callable[[nn.Module], nn.Module]]:
    """Layers of the head (after flattening) with their own map-wise equivalent, by type."""
    from ..models.lenet import RBFOutput

    return {RBFOutput: _rbf_converter}


class FullyConvolutional(nn.Module):
    """``model``'s features (shared, not copied) followed by its head rewritten as convolutions.

    ``forward(x)`` returns ``N x classes x H' x W'`` scores; ``train_size`` is the (H, W) at which the
    map is 1 x 1 and equals ``model(x)``.
    """

    def __init__(
        self, model: nn.Module, head: nn.Sequential, train_size: tuple[int, int], use_features: bool = True
    ) -> None:
        super().__init__()
        self.model = model
        self.head = head
        self.train_size = train_size
        self.use_features = use_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_features:
            x = self.model.forward_features(x)
        return self.head(x)


class _Tracer(fx.Tracer):
    """Keeps layers with a converter (LeNet-5's RBF output) as single calls."""

    def __init__(self, leaves: tuple[type, ...]) -> None:
        super().__init__()
        self.leaves = leaves

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, self.leaves) or super().is_leaf_module(m, qualname)


class _Call(nn.Module):
    def __init__(self, model: nn.Module, method: str) -> None:
        super().__init__()
        self.model, self.method = model, method

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return getattr(self.model, self.method)(x)


def _chain(model: nn.Module, method: str, leaves: tuple[type, ...]) -> tuple[fx.GraphModule, list[fx.Node]]:
    """The operations of ``model.<method>`` as a list, or :class:`ModelError` if they branch."""
    root = _Call(model, method)
    graph = _Tracer(leaves).trace(root)
    gm = fx.GraphModule(root, graph)
    nodes = [n for n in graph.nodes if n.op not in ("placeholder", "output")]
    prev = next(n for n in graph.nodes if n.op == "placeholder")
    for n in nodes:
        tensors = [a for a in (*n.args, *n.kwargs.values()) if isinstance(a, fx.Node)]
        if tensors != [prev] or prev not in n.args or n.op == "get_attr":
            raise ModelError(f"cannot convolutionalise: {method} of {type(model).__name__} is not a chain of "
                             f"layers (at {n.name})", hint=_HINT)  # fmt: skip
        prev = n
    return gm, nodes


def _pool_window(n: int, o: int) -> tuple[int, int] | None:
    """(kernel, stride) of the fixed pooling that adaptive pooling from ``n`` to ``o`` cells performs."""
    starts = [math.floor(i * n / o) for i in range(o)]
    ends = [math.ceil((i + 1) * n / o) for i in range(o)]
    widths = {e - s for s, e in zip(starts, ends, strict=True)}
    steps = {b - a for a, b in zip(starts, starts[1:], strict=False)} or {1}
    if len(widths) != 1 or len(steps) != 1 or 0 in steps:
        return None
    return widths.pop(), steps.pop()


def _fixed_pool(kind: str, out: Any, shape: tuple[int, ...], where: str) -> nn.Module:
    h, w = shape[-2:]
    oh, ow = (out, out) if isinstance(out, int) else (out[0] or h, out[1] or w)
    win = (_pool_window(h, oh), _pool_window(w, ow))
    if win[0] is None or win[1] is None:
        raise ModelError(f"cannot convolutionalise: {where} pools {h}x{w} to {oh}x{ow}, which is not one fixed "
                         "window", hint="train at a size whose feature map divides evenly, or " + _HINT)  # fmt: skip
    (kh, sh), (kw, sw) = win  # type: ignore[misc]
    if (kh, kw) == (1, 1) and (sh, sw) == (1, 1):
        return nn.Identity()
    cls = nn.AvgPool2d if kind == "avg" else nn.MaxPool2d
    return cls((kh, kw), (sh, sw))


def _is_flatten(n: fx.Node, mod: nn.Module | None, x: torch.Tensor) -> bool:
    if isinstance(mod, nn.Flatten):
        return True
    if n.op == "call_function" and n.target is torch.flatten:
        return True
    return n.op == "call_method" and n.target in _FLATTEN_METHODS and x.dim() == 4


@dataclass
class _State:
    """Where a rewrite stands: the (C, h, w) of the flattened map, and whether its first FC layer is done."""

    flat: tuple[int, int, int] | None = None
    first_fc: bool = False


def _call(n: fx.Node, mod: nn.Module | None) -> nn.Module:
    """Node ``n`` as a module taking the running tensor (its own module, or the call with its arguments)."""
    if mod is not None:
        return mod
    pos = n.args.index(n.all_input_nodes[0])
    fn = str(n.target) if n.op == "call_method" else n.target
    return _Apply(fn, tuple(n.args), dict(n.kwargs), pos)  # type: ignore[arg-type]


def _convert(
    gm: fx.GraphModule, nodes: list[fx.Node], x: torch.Tensor, name: str, state: _State
) -> list[nn.Module]:
    """Rewrite a chain running on ``x`` (its input at the training size) as map-wise modules."""
    converters = _converters()
    out: list[nn.Module] = []
    for n in nodes:
        mod = gm.get_submodule(str(n.target)) if n.op == "call_module" else None
        where = f"{name}: {n.target if mod is not None else n.name}"
        step = _call(n, mod)
        if _is_flatten(n, mod, x):
            state.flat, state.first_fc = tuple(x.shape[1:]), True  # type: ignore[assignment]
            x = step(x)
            continue
        extra = [a for a in (*n.args, *n.kwargs.values()) if isinstance(a, torch.Tensor)]
        elementwise = not extra and (isinstance(mod, _ELEMENTWISE_MODULES) or (mod is None and (
            (n.op == "call_function" and n.target in _ELEMENTWISE_FUNCTIONS)
            or (n.op == "call_method" and n.target in _ELEMENTWISE_METHODS))))  # fmt: skip
        if elementwise:
            new = step
        elif state.flat is None:  # still a map: convolutions, pooling, batch norm run as they are
            if isinstance(mod, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
                new = _fixed_pool("avg" if isinstance(mod, nn.AdaptiveAvgPool2d) else "max", mod.output_size,
                                  x.shape, where)  # fmt: skip
            elif mod is None and n.target in (F.adaptive_avg_pool2d, F.adaptive_max_pool2d):
                size = n.args[1] if len(n.args) > 1 else n.kwargs["output_size"]
                new = _fixed_pool("avg" if n.target is F.adaptive_avg_pool2d else "max", size, x.shape, where)
            elif isinstance(mod, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d, nn.BatchNorm2d, nn.ZeroPad2d,
                                  nn.LocalResponseNorm)):  # fmt: skip
                new = mod
            else:
                raise ModelError(f"cannot convolutionalise: {where} ({type(mod).__name__ if mod else n.target}) "
                                 "is not a layer that slides over the map", hint=_HINT)  # fmt: skip
        elif isinstance(mod, nn.Linear):
            # The first FC layer reads the whole flattened map: an h x w kernel; later ones are 1 x 1.
            c, h, w = state.flat if state.first_fc else (mod.in_features, 1, 1)
            state.first_fc = False
            conv = nn.Conv2d(c, mod.out_features, (h, w), bias=mod.bias is not None)
            with torch.no_grad():
                conv.weight.copy_(mod.weight.detach().reshape(mod.out_features, c, h, w))
                if mod.bias is not None:
                    conv.bias.copy_(mod.bias.detach())
            new = conv.to(mod.weight.device, mod.weight.dtype)
        elif isinstance(mod, nn.BatchNorm1d) and not state.first_fc:
            new = nn.BatchNorm2d(mod.num_features, mod.eps, mod.momentum, mod.affine, mod.track_running_stats)
            new.load_state_dict(mod.state_dict())
            new = new.to(x.device, x.dtype)
        elif mod is not None and type(mod) in converters and not state.first_fc:
            new = converters[type(mod)](mod)
        else:
            what = type(mod).__name__ if mod is not None else str(n.target)
            raise ModelError(f"cannot convolutionalise: {where} ({what}) follows the flattening and has no "
                             "convolutional equivalent", hint=_HINT)  # fmt: skip
        out.append(new)
        x = step(x)
    return out


@dataclass(frozen=True)
class ClassMapGeometry:
    """Where the cells of a class map sit on the input: stride, receptive field and first centre (pixels)."""

    stride: tuple[int, int]
    receptive_field: tuple[int, int]
    start: tuple[float, float]  # input coordinates of the centre of cell (0, 0)

    def centres(self, n: int, axis: int) -> torch.Tensor:
        """Pixel coordinates of the centres of ``n`` cells along ``axis`` (0 rows, 1 columns)."""
        return self.start[axis] + self.stride[axis] * torch.arange(n, dtype=torch.float32)


def convolutionalize(model: nn.Module, check: bool = True) -> FullyConvolutional:
    """``model`` with its fully connected head rewritten as convolutions (exact at the training size).

    The result shares the feature layers with ``model`` and runs in the same mode (call ``.eval()``);
    ``check`` compares both on a random image at the training size and raises if they differ.
    """
    info = getattr(model, "info", None)
    if info is None or not hasattr(model, "forward_features"):
        raise ModelError(f"{type(model).__name__} is not a cnnkit model (no .info / forward_features)",
                         hint="build it with cnnkit.create_model or load a run with cnnkit.load_run")  # fmt: skip
    c, h, w = (int(v) for v in info.input_size)
    name = getattr(info, "name", type(model).__name__)
    leaves = tuple(_converters())
    p = next(model.parameters(), None)
    device, dtype = (p.device, p.dtype) if p is not None else (torch.device("cpu"), torch.float32)
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            x = torch.zeros(1, c, h, w, device=device, dtype=dtype)
            use_features = True
            try:  # an MLP flattens inside its features: then the whole network is one chain
                fgm, fnodes = _chain(model, "forward_features", leaves)
                if any(_is_flatten(n, fgm.get_submodule(str(n.target)) if n.op == "call_module" else None, x)
                       for n in fnodes):  # fmt: skip
                    use_features = False
            except (ModelError, fx.proxy.TraceError, TypeError, NotImplementedError):
                pass  # features that branch (ResNet) or cannot be traced: kept whole, checked below
            state = _State()
            head = [] if use_features else _convert(fgm, fnodes, x, name, state)
            hgm, hnodes = _chain(model, "forward_head", leaves)
            head += _convert(hgm, hnodes, model.forward_features(x), name, state)
        fcn = FullyConvolutional(model, nn.Sequential(*head), (h, w), use_features)
        _check_local(fcn, (c, h, w), name)
        if check:
            with torch.no_grad():
                probe = torch.randn(2, c, h, w, device=device, dtype=dtype)
                want, got = model(probe), fcn(probe)
            if got.shape[-2:] != (1, 1) or not torch.allclose(got.flatten(1), want, atol=1e-4, rtol=1e-4):
                raise ModelError(f"cannot convolutionalise {name}: the rewritten network does not reproduce it "
                                 f"(output {tuple(got.shape)}, logits {tuple(want.shape)})", hint=_HINT)  # fmt: skip
    finally:
        model.train(was)
    return fcn


def _check_local(fcn: FullyConvolutional, size: tuple[int, int, int], name: str) -> None:
    """Refuse features that see the whole image (SE gates, attention, spatial transformers)."""
    from .table import summary

    try:
        rows = summary(fcn, input_size=size).rows
    except Exception as e:  # the tracer cannot follow the model: say so rather than guess
        raise ModelError(f"cannot convolutionalise {name}: its receptive field cannot be analysed ({e})",
                         hint=_HINT) from None  # fmt: skip
    for r in rows:
        if r.rf is not None and r.rf.kind != "local" and r.kind != "block":
            why = (
                "looks at the whole image"
                if r.rf.kind == "global"
                else "moves pixels in ways a window cannot"
            )
            raise ModelError(f"cannot convolutionalise {name}: layer {r.name} ({r.type}) {why}, so the network "
                             "is not a sliding window", hint=_HINT)  # fmt: skip


def geometry(fcn: FullyConvolutional, channels: int | None = None) -> ClassMapGeometry:
    """Output stride, receptive field and first cell centre of a class map, from :func:`cnnkit.summary`."""
    from .table import summary

    h, w = fcn.train_size
    c = channels if channels is not None else int(fcn.model.info.input_size[0])
    rf: ReceptiveField | None = summary(fcn, input_size=(c, h, w)).rows[-1].rf
    if rf is None or not rf.is_local:
        raise ModelError("the class map's receptive field is not local", hint=_HINT)
    return ClassMapGeometry(
        tuple(int(j) for j in rf.jump),
        tuple(int(s) for s in rf.size),  # type: ignore[arg-type]
        (float(rf.start[0]), float(rf.start[1])),
    )
