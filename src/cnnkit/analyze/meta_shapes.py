"""Output shapes on the ``meta`` device, without PyTorch's own meta kernels.

A model built by name is traced on the meta device (shapes without arithmetic). For the operations a
CNN runs most, PyTorch's meta kernels are Python functions whose first use imports ``torch._dynamo``
or ``sympy``: seconds of start-up for a summary that takes milliseconds. The tracer's function mode
asks :func:`meta_output` first; each rule below is the op's output-size formula, and ``None`` (an
argument it does not model, or inputs the op would reject) lets the real op answer or raise.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from .ops import arg, pair, tensors


def _same_shape(args: tuple, kwargs: dict) -> tuple[int, ...]:
    return tuple(args[0].shape)


def _linear_shape(args: tuple, kwargs: dict) -> tuple[int, ...] | None:
    w = arg(args, kwargs, 1, "weight")
    if args[0].dim() < 1 or w.dim() != 2 or int(args[0].shape[-1]) != int(w.shape[1]):
        return None  # features and weights disagree (a run's model at another --input): the op raises
    return (*args[0].shape[:-1], int(w.shape[0]))


def _cat_shape(args: tuple, kwargs: dict) -> tuple[int, ...]:
    ts = [t for t in args[0] if t.dim() > 1 or t.numel() > 0]  # cat skips empty 1D tensors
    dim = int(arg(args, kwargs, 1, "dim", 0)) % ts[0].dim()
    shape = list(ts[0].shape)
    shape[dim] = sum(int(t.shape[dim]) for t in ts)
    return tuple(shape)


def _broadcast_shape(args: tuple, kwargs: dict) -> tuple[int, ...] | None:
    """NumPy broadcasting (``torch.broadcast_shapes`` would import sympy); None if the shapes clash."""
    shapes = [tuple(int(d) for d in t.shape) for t in tensors(args)]
    n = max(len(sh) for sh in shapes)
    out = []
    for i in range(n):
        sizes = {sh[len(sh) - n + i] for sh in shapes if len(sh) - n + i >= 0} - {1}
        if len(sizes) > 1:
            return None  # the real op raises the proper error
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


def _adaptive_shape(args: tuple, kwargs: dict) -> tuple[int, ...] | None:
    x, size = args[0], arg(args, kwargs, 1, "output_size")
    if min(x.shape[-2:]) < 1:
        return None
    size = (size, size) if isinstance(size, int) else tuple(size)
    return (
        *x.shape[:-2],
        *(int(n) if s is None else int(s) for s, n in zip(size, x.shape[-2:], strict=True)),
    )


def _conv_shape(args: tuple, kwargs: dict) -> tuple[int, ...] | None:
    x, w = args[0], arg(args, kwargs, 1, "weight")
    pad = arg(args, kwargs, 4, "padding", 0)
    if x.dim() != 4 or w.dim() != 4 or isinstance(pad, str):
        return None  # let the op's own meta kernel answer
    if int(x.shape[1]) != int(w.shape[1]) * int(arg(args, kwargs, 6, "groups", 1)):
        return None  # wrong number of input channels: the op raises the proper error
    stride = pair(arg(args, kwargs, 3, "stride"), (1, 1))
    dil = pair(arg(args, kwargs, 5, "dilation"), (1, 1))
    p = pair(pad, (0, 0))
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
    if x.dim() != 4 or arg(args, kwargs, 6, "return_indices", False):
        return None
    k = pair(arg(args, kwargs, 1, "kernel_size"), (1, 1))
    stride = pair(arg(args, kwargs, 2, "stride"), k)
    pad = pair(arg(args, kwargs, 3, "padding"), (0, 0))
    dil = pair(arg(args, kwargs, 4, "dilation"), (1, 1))
    ceil = bool(arg(args, kwargs, 5, "ceil_mode", False))
    hw = [_pooled(int(x.shape[2 + i]), k[i], stride[i], pad[i], dil[i], ceil) for i in range(2)]
    return (*x.shape[:2], *hw) if min(hw) >= 1 else None


def _avg_pool_shape(args: tuple, kwargs: dict) -> tuple[int, ...] | None:
    x = args[0]
    if x.dim() != 4:
        return None
    k = pair(arg(args, kwargs, 1, "kernel_size"), (1, 1))
    stride = pair(arg(args, kwargs, 2, "stride"), k)
    pad = pair(arg(args, kwargs, 3, "padding"), (0, 0))
    ceil = bool(arg(args, kwargs, 4, "ceil_mode", False))
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


# Output shapes of the ops whose meta kernels are slow to reach (see meta_output).
_META_SHAPES: dict[str, Callable[[tuple, dict], tuple[int, ...] | None]] = {
    "batch_norm": _same_shape, "instance_norm": _same_shape, "layer_norm": _same_shape,
    "group_norm": _same_shape, "linear": _linear_shape, "cat": _cat_shape, "concat": _cat_shape,
    "concatenate": _cat_shape, "adaptive_avg_pool2d": _adaptive_shape, "local_response_norm": _same_shape,
    "conv2d": _conv_shape, "max_pool2d": _max_pool_shape, "avg_pool2d": _avg_pool_shape,
    **{n: _broadcast_shape for n in _ELEMENTWISE},
}  # fmt: skip


def meta_output(name: str, args: tuple, kwargs: dict) -> Tensor | None:
    """The result of ``name`` on a meta tensor, made here from its shape rule; None: run the op itself.

    A meta tensor has no values: the result is an empty tensor of the right shape (an in-place op
    returns its input). The ops' own meta kernels are Python functions whose first use imports
    torch._dynamo or sympy (seconds of start-up; the summary itself takes milliseconds).
    """
    shape_fn = _META_SHAPES.get(name)
    first = next(tensors(args[:1]), None) if shape_fn is not None else None
    shape = shape_fn(args, kwargs) if first is not None and first.is_meta else None  # type: ignore[misc]
    if shape is None:
        return None
    return first if _in_place(name) else first.new_empty(shape)  # type: ignore[union-attr]
