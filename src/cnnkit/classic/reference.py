"""Reference NumPy layers written from the lectures' derivations: forward, backward, gradient check.

Every layer is a small class with ``forward(x)`` and ``backward(dout)``. ``backward`` receives
``dout = dE/d(output)`` (the lecture's ``delta``), returns ``dE/d(input)`` and stores
``dE/d(parameter)`` in ``self.grads`` under the same keys as ``self.params``. Arrays use PyTorch's
layouts (``(N, C, H, W)`` images, ``(out, in, kh, kw)`` conv weights, ``(out, in)`` linear
weights), so the tests can compare every number with ``torch.autograd``.

These layers are for reading and checking, not for speed: they are vectorised (no Python loop per
pixel) but run on the CPU in float64 by default.

References in the comments: ECE 285 ch. IV "CNNs and backprop" (seed 002), the SIBGRAPI tutorial's
losses (seed 000) and the batch-normalisation algorithm (seed 003).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from threadpoolctl import threadpool_limits

from ..errors import ConfigError, DataError

Pair = int | tuple[int, int]


def _pair(v: Pair, what: str, minimum: int = 1) -> tuple[int, int]:
    t = (v, v) if isinstance(v, (int, np.integer)) else tuple(v)
    if len(t) != 2 or any(
        isinstance(a, bool) or not isinstance(a, (int, np.integer)) or a < minimum for a in t
    ):
        raise ConfigError(f"{what} must be an int >= {minimum} or a pair of them, got {v!r}")
    return int(t[0]), int(t[1])


def _windows(
    xp: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int]
) -> np.ndarray:
    """Zero-copy view ``(N, C, Ho, Wo, kh, kw)`` of every (strided, dilated) window of ``xp``.

    This is im2col without the copy: ``win[n, c, i, j, a, b] = xp[n, c, i*s + a*d, j*s + b*d]``.
    """
    eff = (dilation[0] * (kernel[0] - 1) + 1, dilation[1] * (kernel[1] - 1) + 1)
    if xp.shape[2] < eff[0] or xp.shape[3] < eff[1]:
        raise DataError(
            f"input {xp.shape[2:]} (after padding) is smaller than the window {eff}",
            hint="use a larger input, more padding or a smaller kernel",
        )
    win = sliding_window_view(xp, eff, axis=(2, 3))
    return win[:, :, :: stride[0], :: stride[1], :: dilation[0], :: dilation[1]]


def _correlate_batch(
    xp: np.ndarray, w: np.ndarray, stride: tuple[int, int], dilation: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """'valid' multi-channel correlation ``out[n, o] = sum_c w[o, c] ⋆ xp[n, c]`` by im2col + matmul.

    Returns the im2col matrix ``(N*Ho*Wo, C*kh*kw)`` (one row per window, reused for the weight
    gradient) and the output ``(N, O, Ho, Wo)``. One BLAS matrix product does all the sums.
    """
    o, c, kh, kw = w.shape
    win = _windows(xp, (kh, kw), stride, dilation)  # (N, C, Ho, Wo, kh, kw) view
    n, _, ho, wo = win.shape[:4]
    cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(n * ho * wo, c * kh * kw)  # the copy: im2col
    out = (cols @ w.reshape(o, -1).T).reshape(n, ho, wo, o).transpose(0, 3, 1, 2)
    return cols, out


def _check_nchw(x: np.ndarray, channels: int | None, who: str) -> None:
    if x.ndim != 4 or (channels is not None and x.shape[1] != channels):
        want = f"(N, {channels}, H, W)" if channels is not None else "(N, C, H, W)"
        raise DataError(f"{who} expects input of shape {want}, got {x.shape}")


class Layer:
    """Base class: ``params``/``grads`` dicts with matching keys, train/eval mode."""

    is_loss = False

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.training = True

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dout: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    def train(self, mode: bool = True) -> Layer:
        self.training = mode
        return self

    def eval(self) -> Layer:
        return self.train(False)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}={tuple(v.shape)}" for k, v in self.params.items())
        return f"{type(self).__name__}({shapes})"


# ----------------------------------------------------------------------------------------------
# Convolution and fully connected layers
# ----------------------------------------------------------------------------------------------


class Conv2d(Layer):
    """Multi-channel 2-D convolution layer (a cross-correlation, like every DL library).

    ``a[n, o, i, j] = b[o] + sum_{c, k, l} w[o, c, k, l] x_pad[n, c, i*s + k*d, j*s + l*d]``:
    a filter bank where each output feature map is a sum of 2-D correlations over the input
    channels ("not 3d convolutions, but sums of 2d convolutions"), zero-padded by ``padding``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Pair,
        stride: Pair = 1,
        padding: Pair = 0,
        dilation: Pair = 1,
        bias: bool = True,
        seed: int | None = 0,
        dtype: Any = np.float64,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = _pair(stride, "stride")
        self.padding = _pair(padding, "padding", minimum=0)
        self.dilation = _pair(dilation, "dilation")
        kh, kw = self.kernel_size
        fan_in = in_channels * kh * kw
        rng = np.random.default_rng(seed)
        # He initialisation, std sqrt(2 / fan_in): keeps the variance of ReLU activations constant.
        self.params["weight"] = rng.normal(
            0.0, np.sqrt(2.0 / fan_in), (out_channels, in_channels, kh, kw)
        ).astype(dtype)
        if bias:
            self.params["bias"] = np.zeros(out_channels, dtype=dtype)

    def forward(self, x: np.ndarray) -> np.ndarray:
        _check_nchw(x, self.in_channels, "Conv2d")
        ph, pw = self.padding
        xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))  # zero-padding, as in DL libraries
        self._x_shape = x.shape
        self._cols, out = _correlate_batch(xp, self.params["weight"], self.stride, self.dilation)
        if "bias" in self.params:
            out = out + self.params["bias"][None, :, None, None]  # one shared bias per feature map
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        w = self.params["weight"]
        kh, kw = self.kernel_size
        (sh, sw), (dh, dw), (ph, pw) = self.stride, self.dilation, self.padding
        n, _, ho, wo = dout.shape
        # dE/dkappa_n = sum_i delta_i h_{i+n} = (delta ⋆ h)_n "cropped to the size of the filter".
        d2 = dout.transpose(1, 0, 2, 3).reshape(self.out_channels, -1)  # (out, N*Ho*Wo)
        self.grads["weight"] = (d2 @ self._cols).reshape(w.shape)
        if "bias" in self.params:
            self.grads["bias"] = dout.sum(axis=(0, 2, 3))  # the bias touches every output pixel
        # delta_{k} = kappa* ⋆ delta_{k+1}: correlate the error with the flipped kernel ("full"
        # boundary). Stride first: its backward injects s - 1 zeros between the errors (see
        # Subsample); dilation spaces the flipped taps d pixels apart, as in the forward pass.
        up = np.zeros((n, self.out_channels, (ho - 1) * sh + 1, (wo - 1) * sw + 1), dtype=dout.dtype)
        up[:, :, ::sh, ::sw] = dout
        fh, fw = dh * (kh - 1), dw * (kw - 1)
        up = np.pad(up, ((0, 0), (0, 0), (fh, fh), (fw, fw)))
        w_flip = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)  # (in, out, kh, kw), both axes flipped
        _, dxp = _correlate_batch(up, w_flip, (1, 1), (dh, dw))
        # Rows/columns of the padded input that no window reached (when (H + 2p - k_eff) % s != 0)
        # have zero gradient; then crop the padding away.
        hp, wp = self._x_shape[2] + 2 * ph, self._x_shape[3] + 2 * pw
        dxp = np.pad(dxp, ((0, 0), (0, 0), (0, hp - dxp.shape[2]), (0, wp - dxp.shape[3])))
        return dxp[:, :, ph : hp - ph, pw : wp - pw]


class Linear(Layer):
    """Fully connected layer ``a = W h + b`` (``x @ W.T + b`` on a batch of row vectors)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        seed: int | None = 0,
        dtype: Any = np.float64,
    ) -> None:
        super().__init__()
        rng = np.random.default_rng(seed)
        self.params["weight"] = rng.normal(
            0.0, np.sqrt(2.0 / in_features), (out_features, in_features)
        ).astype(dtype)
        if bias:
            self.params["bias"] = np.zeros(out_features, dtype=dtype)

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != 2 or x.shape[1] != self.params["weight"].shape[1]:
            raise DataError(
                f"Linear expects input of shape (N, {self.params['weight'].shape[1]}), got {x.shape}"
            )
        self._x = x
        out = x @ self.params["weight"].T
        return out + self.params["bias"] if "bias" in self.params else out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        self.grads["weight"] = dout.T @ self._x  # nabla_W E = delta h^T, summed over the batch
        if "bias" in self.params:
            self.grads["bias"] = dout.sum(axis=0)
        return dout @ self.params["weight"]  # W^T delta


class Flatten(Layer):
    """``(N, C, H, W) -> (N, C*H*W)``: "make it flat and plug a fully connected classifier"."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout.reshape(self._shape)


# ----------------------------------------------------------------------------------------------
# Pooling and striding
# ----------------------------------------------------------------------------------------------


class _Pool(Layer):
    def __init__(self, kernel_size: Pair, stride: Pair | None = None, padding: Pair = 0) -> None:
        super().__init__()
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else _pair(stride, "stride")  # z = s by default
        self.padding = _pair(padding, "padding", minimum=0)

    def _pad(self, x: np.ndarray, value: float) -> np.ndarray:
        _check_nchw(x, None, type(self).__name__)
        if not np.issubdtype(x.dtype, np.floating):
            x = x.astype(np.float64)  # -inf padding and averages need floats
        ph, pw = self.padding
        self._x_shape = x.shape
        return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)

    def _scatter(self, per_tap: Any) -> np.ndarray:
        """Sum ``per_tap(t)`` (an ``(N, C, Ho, Wo)`` error for tap ``t`` of every window) back onto
        the input pixels: one vectorised strided add per tap, overlapping windows accumulate."""
        n, c, h, w = self._x_shape
        (ph, pw), (sh, sw), (kh, kw) = self.padding, self.stride, self.kernel_size
        dxp = np.zeros((n, c, h + 2 * ph, w + 2 * pw))
        for t in range(kh * kw):
            i, j = divmod(t, kw)
            g = per_tap(t)
            ho, wo = g.shape[2:]
            dxp[:, :, i : i + (ho - 1) * sh + 1 : sh, j : j + (wo - 1) * sw + 1 : sw] += g
        return dxp[:, :, ph : ph + h, pw : pw + w]


class MaxPool2d(_Pool):
    """Max-pooling in a ``z x z`` window every ``s`` pixels (padding counts as -inf).

    Forward "takes the max and memorises its position in the window"; backward "distributes the
    errors according to these original positions" (the sub-gradient of max is 1 at the argmax,
    0 elsewhere), so an input that is the max of several windows collects all their errors.
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        xp = self._pad(x, -np.inf)
        win = _windows(xp, self.kernel_size, self.stride, (1, 1))
        flat = win.reshape(*win.shape[:4], -1)
        self._argmax = flat.argmax(axis=-1)  # first maximum in row-major order, like PyTorch
        return np.take_along_axis(flat, self._argmax[..., None], axis=-1)[..., 0]

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return self._scatter(lambda t: np.where(self._argmax == t, dout, 0.0))


class AvgPool2d(_Pool):
    """Average-pooling (zero padding counted in the average, as PyTorch's default)."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        xp = self._pad(x, 0.0)
        return _windows(xp, self.kernel_size, self.stride, (1, 1)).mean(axis=(-2, -1))

    def backward(self, dout: np.ndarray) -> np.ndarray:
        z = self.kernel_size[0] * self.kernel_size[1]
        return self._scatter(lambda t: dout / z)  # d mean / d x = 1 / z^2 for every tap


class LpPool2d(_Pool):
    """ℓp-pooling, the Hölder (power) mean ``h = ((1 / z^2) sum_{k,l} |x_{i+k, j+l}|^p)^(1/p)``.

    ``p = 1`` is average pooling (of |x|) and ``p -> inf`` tends to max pooling. The absolute value
    makes the power defined for any real ``p > 0`` and signed inputs (the lecture's ``x^p`` for the
    usual non-negative, post-ReLU inputs). Note ``torch.nn.LPPool2d`` omits the ``1 / z^2``.
    """

    def __init__(
        self, p: float = 2.0, kernel_size: Pair = 2, stride: Pair | None = None, padding: Pair = 0
    ) -> None:
        super().__init__(kernel_size, stride, padding)
        if not p > 0:
            raise ConfigError(f"LpPool2d needs p > 0, got {p!r}")
        self.p = float(p)

    def forward(self, x: np.ndarray) -> np.ndarray:
        xp = self._pad(x, 0.0)
        self._win = _windows(xp, self.kernel_size, self.stride, (1, 1))
        self._out = (np.abs(self._win) ** self.p).mean(axis=(-2, -1)) ** (1.0 / self.p)
        return self._out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        p, z = self.p, self.kernel_size[0] * self.kernel_size[1]
        # dh/dx = (1/p) m^(1/p - 1) * (p / z) |x|^(p-1) sign(x) = |x|^(p-1) sign(x) / (z h^(p-1)),
        # with m the mean of |x|^p; a window of zeros (h = 0) gets a zero gradient.
        scale = np.where(self._out > 0, dout / (z * np.where(self._out > 0, self._out, 1.0) ** (p - 1)), 0.0)
        kw = self.kernel_size[1]

        def tap(t: int) -> np.ndarray:
            xw = self._win[..., t // kw, t % kw]
            return scale * np.abs(xw) ** (p - 1) * np.sign(xw)

        return self._scatter(tap)


class Subsample(Layer):
    """Striding: "take one every s elements" along the last two axes.

    Backward "injects s - 1 zeros after each element": the Jacobian is a selection matrix, applied
    here as a strided assignment instead of being stored (lecture: never build the huge matrix).
    """

    def __init__(self, stride: Pair = 2) -> None:
        super().__init__()
        self.stride = _pair(stride, "stride")

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim < 2:
            raise DataError(f"Subsample needs at least 2 dimensions, got shape {x.shape}")
        self._x_shape = x.shape
        return x[..., :: self.stride[0], :: self.stride[1]]

    def backward(self, dout: np.ndarray) -> np.ndarray:
        dx = np.zeros(self._x_shape, dtype=dout.dtype)
        dx[..., :: self.stride[0], :: self.stride[1]] = dout
        return dx


Stride = Subsample


# ----------------------------------------------------------------------------------------------
# Activations (seed 003's table); backward is dout * g'(a)
# ----------------------------------------------------------------------------------------------


class ReLU(Layer):
    """``max(a, 0)``; derivative 1 where ``a > 0`` else 0 (the sub-gradient 0 at the kink)."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._mask = x > 0
        return np.where(self._mask, x, 0.0)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return np.where(self._mask, dout, 0.0)


class LeakyReLU(Layer):
    """``x`` if ``x > 0`` else ``alpha x``; derivative 1 or ``alpha``."""

    def __init__(self, alpha: float = 0.01) -> None:
        super().__init__()
        self.alpha = float(alpha)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._mask = x > 0
        return np.where(self._mask, x, self.alpha * x)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return np.where(self._mask, dout, self.alpha * dout)


class ELU(Layer):
    """``x`` if ``x > 0`` else ``alpha (e^x - 1)``; derivative 1 or ``alpha e^x`` (= output + alpha)."""

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = float(alpha)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return np.where(x > 0, x, self.alpha * np.expm1(np.minimum(x, 0.0)))

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return np.where(self._x > 0, dout, dout * self.alpha * np.exp(np.minimum(self._x, 0.0)))


class Sigmoid(Layer):
    """``1 / (1 + e^-x)``; derivative ``s (1 - s)``."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        e = np.exp(-np.abs(x))  # never overflows; pick the stable form for each sign
        self._s = np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
        return self._s

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout * self._s * (1.0 - self._s)


class Tanh(Layer):
    """``(e^x - e^-x) / (e^x + e^-x)``; derivative ``1 - tanh^2``."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._t = np.tanh(x)
        return self._t

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout * (1.0 - self._t**2)


# ----------------------------------------------------------------------------------------------
# Batch normalisation (seed 003's algorithm)
# ----------------------------------------------------------------------------------------------


class BatchNorm(Layer):
    """Batch normalisation over the batch (and spatial) axes of ``(N, D)`` or ``(N, C, H, W)`` inputs.

    Training: ``mu_B``, ``sigma_B^2`` of the mini-batch, ``x_hat = (x - mu_B) / sqrt(sigma_B^2 + eps)``,
    ``y = gamma x_hat + beta``; the running statistics follow ``r <- (1 - momentum) r + momentum *
    stat`` (the unbiased variance, as PyTorch). Evaluation normalises with the running statistics.
    """

    def __init__(
        self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, dtype: Any = np.float64
    ) -> None:
        super().__init__()
        self.eps, self.momentum = float(eps), float(momentum)
        self.params["gamma"] = np.ones(num_features, dtype=dtype)
        self.params["beta"] = np.zeros(num_features, dtype=dtype)
        self.running_mean = np.zeros(num_features, dtype=dtype)
        self.running_var = np.ones(num_features, dtype=dtype)

    def _axes(self, x: np.ndarray) -> tuple[tuple[int, ...], tuple[int, ...]]:
        c = self.params["gamma"].shape[0]
        if x.ndim not in (2, 4) or x.shape[1] != c:
            raise DataError(f"BatchNorm({c}) expects (N, {c}) or (N, {c}, H, W) input, got {x.shape}")
        return ((0,), (1, c)) if x.ndim == 2 else ((0, 2, 3), (1, c, 1, 1))

    def forward(self, x: np.ndarray) -> np.ndarray:
        axes, shape = self._axes(x)
        if self.training:
            m = x.size // x.shape[1]
            if m < 2:
                raise DataError("BatchNorm in training mode needs more than one value per channel")
            mu = x.mean(axis=axes)  # mini-batch mean
            var = x.var(axis=axes)  # mini-batch variance (biased: 1/m)
            self.running_mean = (1 - self.momentum) * self.running_mean + self.momentum * mu
            self.running_var = (1 - self.momentum) * self.running_var + self.momentum * var * m / (m - 1)
        else:
            mu, var = self.running_mean, self.running_var
        self._inv_std = 1.0 / np.sqrt(var + self.eps).reshape(shape)
        self._xhat = (x - mu.reshape(shape)) * self._inv_std  # normalise
        self._axes_shape = (axes, shape)
        return self.params["gamma"].reshape(shape) * self._xhat + self.params["beta"].reshape(shape)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        axes, shape = self._axes_shape
        self.grads["gamma"] = (dout * self._xhat).sum(axis=axes)
        self.grads["beta"] = dout.sum(axis=axes)
        dxhat = dout * self.params["gamma"].reshape(shape)
        if not self.training:  # mu and sigma are constants in eval mode
            return dxhat * self._inv_std
        # Chain rule through mu_B and sigma_B^2 (both depend on every x_i of the batch):
        # dx = (1/sigma) (dxhat - mean(dxhat) - x_hat * mean(dxhat * x_hat)).
        return self._inv_std * (
            dxhat
            - dxhat.mean(axis=axes, keepdims=True)
            - self._xhat * (dxhat * self._xhat).mean(axis=axes, keepdims=True)
        )


# ----------------------------------------------------------------------------------------------
# Losses (seed 000): forward(scores, target) -> mean loss over the batch; backward(1.0) -> dscores
# ----------------------------------------------------------------------------------------------


def _check_scores(scores: np.ndarray, target: np.ndarray, who: str) -> np.ndarray:
    target = np.asarray(target)
    if scores.ndim != 2 or target.shape != (scores.shape[0],):
        raise DataError(
            f"{who} expects scores (N, K) and integer targets (N,), got {scores.shape} and {target.shape}"
        )
    if target.min() < 0 or target.max() >= scores.shape[1]:
        raise DataError(
            f"{who}: targets must lie in [0, {scores.shape[1] - 1}], got {target.min()}..{target.max()}"
        )
    return target.astype(np.int64)


class SoftmaxCrossEntropy(Layer):
    """Softmax output layer + cross-entropy: ``L = -(1/N) sum_i log softmax(a_i)[y_i]``.

    ``softmax(a)_k = exp(a_k) / sum_l exp(a_l)``; the gradient w.r.t. the scores is the classic
    ``(softmax(a) - onehot(y)) / N``.
    """

    is_loss = True

    def forward(self, scores: np.ndarray, target: np.ndarray) -> float:  # type: ignore[override]
        self._y = _check_scores(scores, target, "SoftmaxCrossEntropy")
        z = scores - scores.max(axis=1, keepdims=True)  # shift for stability (softmax is shift invariant)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        self.probs = np.exp(logp)
        return float(-logp[np.arange(len(self._y)), self._y].mean())

    def backward(self, dout: float | np.ndarray = 1.0) -> np.ndarray:
        g = self.probs.copy()
        g[np.arange(len(self._y)), self._y] -= 1.0
        return g * (np.asarray(dout) / len(self._y))


class MulticlassHinge(Layer):
    """Multiclass SVM (hinge) loss ``L = (1/N) sum_i sum_{j != y_i} max(0, s_j - s_{y_i} + margin)``.

    Each wrong class whose score comes within ``margin`` of the true class's score adds a linear
    penalty; its gradient is +1 for that class and -1 (per violating class) for the true class.
    Equals ``torch.nn.functional.multi_margin_loss(s, y) * K`` (PyTorch also divides by K).
    """

    is_loss = True

    def __init__(self, margin: float = 1.0) -> None:
        super().__init__()
        self.margin = float(margin)

    def forward(self, scores: np.ndarray, target: np.ndarray) -> float:  # type: ignore[override]
        y = self._y = _check_scores(scores, target, "MulticlassHinge")
        rows = np.arange(len(y))
        m = np.maximum(0.0, scores - scores[rows, y][:, None] + self.margin)
        m[rows, y] = 0.0  # the true class does not compete with itself
        self._active = m > 0
        return float(m.sum() / len(y))

    def backward(self, dout: float | np.ndarray = 1.0) -> np.ndarray:
        g = self._active.astype(np.float64)
        g[np.arange(len(self._y)), self._y] = -g.sum(axis=1)
        return g * (np.asarray(dout) / len(self._y))


# ----------------------------------------------------------------------------------------------
# Gradient check (seed 000: "numerical gradient: approximate; analytic gradient: exact")
# ----------------------------------------------------------------------------------------------


def relative_error(analytic: np.ndarray, numeric: np.ndarray, atol: float = 1e-6) -> float:
    """``max |a - n| / max(max|a|, max|n|)``: the worst error relative to the gradient's scale.

    Entry-wise ratios ``|a_i - n_i| / (|a_i| + |n_i|)`` blow up on entries that are zero up to
    rounding (common in sums such as conv gradients), so the error is normalised by the largest
    entry instead; a wrong formula still shows up as an error of order 1. A gradient that is zero
    up to ``atol`` everywhere (e.g. a conv bias followed by BatchNorm, which removes any shift)
    is compared in absolute terms: there the finite differences only measure rounding noise.
    """
    scale = max(float(np.abs(analytic).max(initial=0.0)), float(np.abs(numeric).max(initial=0.0)))
    err = float(np.abs(analytic - numeric).max(initial=0.0))
    return err / scale if scale >= atol else err


def gradient_check(
    layer: Layer, x: np.ndarray, target: np.ndarray | None = None, eps: float = 1e-6, seed: int = 0
) -> dict[str, float]:
    """Compare ``backward`` with central differences ``(f(w + eps) - f(w - eps)) / (2 eps)``.

    For a layer the scalar is ``f = sum(forward(x) * r)`` with a fixed random ``r`` (so
    ``df/dx = backward(r)`` checks the whole vector-Jacobian product); for a loss it is the loss
    itself (``target`` required). Returns ``{"x": err, <param>: err, ...}`` using
    :func:`relative_error`. ``x`` is copied to float64; parameters are perturbed in place and
    restored. Use float64 layers: float32 rounding alone is larger than the tolerances of interest.
    """
    x = np.array(x, dtype=np.float64)
    if layer.is_loss and target is None:
        raise ConfigError(f"gradient_check of the loss {type(layer).__name__} needs target=")
    # A seed sequence of its own, so r never coincides with data drawn from default_rng(seed)
    # (r = x would make f = sum(BN(x) * x), whose x-gradient is ~0 and a meaningless test).
    rng = np.random.default_rng([seed, 0x67726164])

    def run() -> Any:
        return layer.forward(x, target) if layer.is_loss else layer.forward(x)  # type: ignore[call-arg]

    out = run()
    r = 1.0 if layer.is_loss else rng.standard_normal(np.shape(out))
    analytic = {"x": layer.backward(r)}
    analytic.update({k: g.copy() for k, g in layer.grads.items()})

    def f() -> float:
        return float(run()) if layer.is_loss else float(np.sum(run() * r))

    errors = {}
    for name, arr in {"x": x, **layer.params}.items():
        numeric = np.zeros_like(arr, dtype=np.float64)
        for idx in np.ndindex(arr.shape):
            old = arr[idx]
            arr[idx] = old + eps
            fp = f()
            arr[idx] = old - eps
            fm = f()
            arr[idx] = old
            numeric[idx] = (fp - fm) / (2 * eps)
        errors[name] = relative_error(analytic[name], numeric)
    return errors


# ----------------------------------------------------------------------------------------------
# A tiny CNN made only of the layers above, trained with mini-batch SGD + momentum
# ----------------------------------------------------------------------------------------------


class Sequential(Layer):
    """Layers applied in order; backward runs them in reverse (backprop = the chain rule)."""

    def __init__(self, layers: Sequence[Layer]) -> None:
        super().__init__()
        self.layers = list(layers)

    @property  # type: ignore[override]
    def params(self) -> dict[str, np.ndarray]:
        """The layers' parameter arrays themselves (not copies), keyed ``"<index>.<name>"``."""
        return {f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in layer.params.items()}

    @params.setter
    def params(self, value: dict[str, np.ndarray]) -> None:  # Layer.__init__ assigns {}
        if value:
            raise AttributeError("set parameters on the individual layers")

    @property  # type: ignore[override]
    def grads(self) -> dict[str, np.ndarray]:
        return {f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in layer.grads.items()}

    @grads.setter
    def grads(self, value: dict[str, np.ndarray]) -> None:
        if value:
            raise AttributeError("gradients are stored on the individual layers")

    def forward(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dout: np.ndarray) -> np.ndarray:
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout

    def train(self, mode: bool = True) -> Sequential:
        self.training = mode
        for layer in self.layers:
            layer.train(mode)
        return self

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def __repr__(self) -> str:
        return "Sequential(\n" + "".join(f"  ({i}) {layer!r}\n" for i, layer in enumerate(self.layers)) + ")"


class NumpyCNN(Sequential):
    """``conv3x3 - BN - ReLU - maxpool2 - conv3x3 - ReLU - maxpool2 - flatten - linear``.

    Sized for 8x8 digits (8 -> 4 -> 2 pixels); any ``(in_channels, H, W)`` with H, W divisible by 4
    works (the linear layer adapts to ``input_size``).
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        input_size: tuple[int, int] = (8, 8),
        channels: tuple[int, int] = (16, 32),
        seed: int = 0,
    ) -> None:
        c1, c2 = channels
        h, w = input_size
        super().__init__(
            [
                Conv2d(in_channels, c1, 3, padding=1, bias=False, seed=seed),  # BN's beta is the bias
                BatchNorm(c1),
                ReLU(),
                MaxPool2d(2),
                Conv2d(c1, c2, 3, padding=1, seed=seed + 1),
                ReLU(),
                MaxPool2d(2),
                Flatten(),
                Linear(c2 * (h // 4) * (w // 4), num_classes, seed=seed + 2),
            ]
        )
        self.input_size = (in_channels, h, w)

    def predict(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Class indices for ``x`` ``(N, C, H, W)``, in eval mode (BatchNorm uses running stats)."""
        mode = self.training
        self.eval()
        try:
            return np.concatenate(
                [self.forward(x[i : i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)]
            )
        finally:
            self.train(mode)


class SGD:
    """Mini-batch SGD with momentum and L2 weight decay (PyTorch's update rule).

    ``g = grad + wd * w``; ``v <- mu v + g``; ``w <- w - lr v``. Momentum keeps a running direction
    that smooths the noisy mini-batch gradients.
    """

    def __init__(
        self, model: Layer, lr: float = 0.05, momentum: float = 0.9, weight_decay: float = 0.0
    ) -> None:
        if not lr > 0 or not 0 <= momentum < 1 or weight_decay < 0:
            raise ConfigError(f"bad SGD settings lr={lr}, momentum={momentum}, weight_decay={weight_decay}")
        self.model, self.lr, self.momentum, self.weight_decay = model, lr, momentum, weight_decay
        self.velocity = {k: np.zeros_like(v) for k, v in model.params.items()}

    def step(self) -> None:
        params, grads = self.model.params, self.model.grads
        for k, w in params.items():
            g = grads[k] + self.weight_decay * w if self.weight_decay and w.ndim > 1 else grads[k]
            self.velocity[k] = self.momentum * self.velocity[k] + g
            w -= self.lr * self.velocity[k]  # in place: the layer owns this array


@dataclass
class NumpyTrainResult:
    """Model and per-epoch history of :func:`train_numpy_cnn`."""

    model: NumpyCNN
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    seconds: float = 0.0


def train_numpy_cnn(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    epochs: int = 8,
    batch_size: int = 32,
    lr: float = 0.05,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    seed: int = 0,
    model: NumpyCNN | None = None,
    verbose: bool = False,
) -> NumpyTrainResult:
    """Train a :class:`NumpyCNN` on ``(N, C, H, W)`` images in [0, 1] with mini-batch SGD + momentum.

    Each epoch visits the training set in a new random order (seeded); the loss is softmax cross-
    entropy. Returns the model and the per-epoch loss/accuracies.
    """
    import time

    x_train = np.asarray(x_train, dtype=np.float64)
    y_train = np.asarray(y_train, dtype=np.int64)
    if x_train.ndim != 4 or len(x_train) != len(y_train):
        raise DataError(
            f"train_numpy_cnn expects images (N, C, H, W) and labels (N,), got {x_train.shape}, {y_train.shape}"
        )
    if model is None:
        model = NumpyCNN(int(y_train.max()) + 1, x_train.shape[1], x_train.shape[2:], seed=seed)  # type: ignore[arg-type]
    loss_fn = SoftmaxCrossEntropy()
    opt = SGD(model, lr=lr, momentum=momentum, weight_decay=weight_decay)
    rng = np.random.default_rng(seed)
    result = NumpyTrainResult(model)
    t0 = time.perf_counter()
    # The matrix products here are tiny: BLAS threads only add synchronisation (measured 3-10x
    # slower on a busy 2-core machine), so run them single-threaded.
    with threadpool_limits(1, user_api="blas"):
        _train_epochs(
            model, loss_fn, opt, rng, result, x_train, y_train, x_val, y_val, epochs, batch_size, verbose
        )
    result.seconds = time.perf_counter() - t0
    model.eval()
    return result


def _train_epochs(
    model: NumpyCNN,
    loss_fn: SoftmaxCrossEntropy,
    opt: SGD,
    rng: np.random.Generator,
    result: NumpyTrainResult,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray | None,
    y_val: np.ndarray | None,
    epochs: int,
    batch_size: int,
    verbose: bool,
) -> None:
    for epoch in range(epochs):
        model.train()
        order = rng.permutation(len(x_train))
        losses, correct = [], 0
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            if len(idx) < 2:  # BatchNorm needs a batch; drop a last batch of one
                continue
            scores = model.forward(x_train[idx])
            losses.append(loss_fn.forward(scores, y_train[idx]) * len(idx))
            correct += int((scores.argmax(1) == y_train[idx]).sum())
            model.backward(loss_fn.backward(1.0))
            opt.step()
        result.train_loss.append(float(np.sum(losses) / len(order)))
        result.train_acc.append(correct / len(order))
        if x_val is not None and y_val is not None:
            result.val_acc.append(float((model.predict(np.asarray(x_val, dtype=np.float64)) == y_val).mean()))
        if verbose:
            val = f"  val acc {result.val_acc[-1]:.4f}" if result.val_acc else ""
            print(
                f"epoch {epoch + 1:2d}  loss {result.train_loss[-1]:.4f}  train acc {result.train_acc[-1]:.4f}{val}"
            )
