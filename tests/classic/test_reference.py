"""NumPy reference layers: gradient checks, agreement with torch autograd, the lecture's examples."""

from __future__ import annotations

import numpy as np
import pytest

from cnnkit.classic import reference as R
from cnnkit.errors import ConfigError, DataError

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def _bn_eval() -> R.BatchNorm:
    bn = R.BatchNorm(3)
    g = np.random.default_rng(7)
    bn.running_mean = g.standard_normal(3)
    bn.running_var = g.random(3) + 0.5
    bn.params["gamma"] = g.standard_normal(3)
    bn.params["beta"] = g.standard_normal(3)
    return bn.eval()


def _bn_train(c: int) -> R.BatchNorm:
    bn = R.BatchNorm(c, momentum=0.3)
    g = np.random.default_rng(8)
    bn.params["gamma"], bn.params["beta"] = g.standard_normal(c), g.standard_normal(c)
    return bn


def _torch_bn(layer: R.BatchNorm, x, p):
    rm, rv = torch.tensor(layer.running_mean), torch.tensor(layer.running_var)
    out = TF.batch_norm(
        x, rm, rv, p["gamma"], p["beta"], training=layer.training, momentum=layer.momentum, eps=layer.eps
    )
    return out, {"running_mean": rm.numpy(), "running_var": rv.numpy()}


# name -> (layer factory, input shape, torch forward(layer, x, params) -> output [, buffers])
CASES = {
    "conv": (lambda: R.Conv2d(3, 4, 3, padding=1, seed=1), (2, 3, 6, 7),
             lambda m, x, p: TF.conv2d(x, p["weight"], p["bias"], padding=1)),
    "conv_stride_pad_dilation": (lambda: R.Conv2d(3, 2, (3, 2), stride=(2, 1), padding=(2, 1), dilation=(2, 1), seed=2),
                                 (2, 3, 9, 8),
                                 lambda m, x, p: TF.conv2d(x, p["weight"], p["bias"], (2, 1), (2, 1), (2, 1))),
    "conv_stride_leftover_no_bias": (lambda: R.Conv2d(2, 3, 2, stride=2, bias=False, seed=3), (2, 2, 7, 7),
                                     lambda m, x, p: TF.conv2d(x, p["weight"], None, 2)),
    "maxpool": (lambda: R.MaxPool2d(2), (2, 3, 6, 6), lambda m, x, p: TF.max_pool2d(x, 2)),
    "maxpool_overlapping_padded": (lambda: R.MaxPool2d(3, 2, padding=1), (2, 2, 7, 8),
                                   lambda m, x, p: TF.max_pool2d(x, 3, 2, 1)),
    "avgpool": (lambda: R.AvgPool2d(3, 2, padding=1), (2, 2, 7, 8), lambda m, x, p: TF.avg_pool2d(x, 3, 2, 1)),
    "lppool_p2": (lambda: R.LpPool2d(2, 2), (2, 2, 6, 6), lambda m, x, p: TF.avg_pool2d(x.abs() ** 2, 2) ** 0.5),
    "lppool_p3_overlapping": (lambda: R.LpPool2d(3.0, (2, 3), 1), (1, 2, 5, 6),
                              lambda m, x, p: TF.avg_pool2d(x.abs() ** 3, (2, 3), 1) ** (1 / 3)),
    "subsample": (lambda: R.Subsample((2, 3)), (2, 2, 7, 8), lambda m, x, p: x[..., ::2, ::3]),
    "linear": (lambda: R.Linear(6, 4, seed=4), (5, 6), lambda m, x, p: TF.linear(x, p["weight"], p["bias"])),
    "relu": (R.ReLU, (3, 4, 5), lambda m, x, p: TF.relu(x)),
    "leaky_relu": (lambda: R.LeakyReLU(0.1), (3, 4, 5), lambda m, x, p: TF.leaky_relu(x, 0.1)),
    "elu": (lambda: R.ELU(0.7), (3, 4, 5), lambda m, x, p: TF.elu(x, 0.7)),
    "sigmoid": (R.Sigmoid, (3, 4, 5), lambda m, x, p: torch.sigmoid(x)),
    "tanh": (R.Tanh, (3, 4, 5), lambda m, x, p: torch.tanh(x)),
    "batchnorm2d_train": (lambda: _bn_train(3), (4, 3, 3, 2), _torch_bn),
    "batchnorm1d_train": (lambda: _bn_train(5), (6, 5), _torch_bn),
    "batchnorm_eval": (_bn_eval, (4, 3, 3, 2), _torch_bn),
}  # fmt: skip


def _input(shape, seed=0):
    # 3 * N(0, 1): spreads values so pooling windows have no near-ties and activations see both signs.
    return 3 * np.random.default_rng([seed, 99]).standard_normal(shape)


@pytest.mark.parametrize("name", list(CASES))
def test_gradient_check(name):
    factory, shape, _ = CASES[name]
    layer = factory()
    errors = R.gradient_check(layer, _input(shape))
    assert set(errors) == {"x", *layer.params}
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("name", list(CASES))
def test_matches_torch_autograd(name):
    factory, shape, torch_fn = CASES[name]
    layer = factory()
    x = _input(shape, seed=1)
    before = {k: v.copy() for k, v in layer.params.items()}
    out = layer.forward(x)
    dout = np.random.default_rng(2).standard_normal(out.shape)
    dx = layer.backward(dout)
    xt = torch.tensor(x, requires_grad=True)
    pt = {k: torch.tensor(v, requires_grad=True) for k, v in before.items()}
    res = torch_fn(factory(), xt, pt)  # a fresh twin: same seeded parameters and running statistics
    out_t, buffers = res if isinstance(res, tuple) else (res, {})
    out_t.backward(torch.tensor(dout))
    np.testing.assert_allclose(out, out_t.detach().numpy(), rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-8, atol=1e-10)
    assert set(layer.grads) == set(pt)
    for k, t in pt.items():
        np.testing.assert_allclose(layer.grads[k], t.grad.numpy(), rtol=1e-8, atol=1e-10, err_msg=k)
    for k, v in buffers.items():  # BatchNorm running statistics (unbiased variance, momentum)
        np.testing.assert_allclose(getattr(layer, k), v, rtol=1e-10, err_msg=k)


@pytest.mark.parametrize("loss_name", ["cross_entropy", "hinge"])
def test_losses_match_torch_and_pass_gradient_check(loss_name):
    g = np.random.default_rng(3)
    scores, y = 2 * g.standard_normal((7, 5)), g.integers(0, 5, 7)
    layer = R.SoftmaxCrossEntropy() if loss_name == "cross_entropy" else R.MulticlassHinge()
    assert R.gradient_check(layer, scores, target=y)["x"] < 1e-6
    loss = layer.forward(scores, y)
    ds = layer.backward(1.0)
    st = torch.tensor(scores, requires_grad=True)
    yt = torch.tensor(y)
    # torch's multi_margin_loss divides by the number of classes; the lecture's hinge does not.
    lt = TF.cross_entropy(st, yt) if loss_name == "cross_entropy" else TF.multi_margin_loss(st, yt) * 5
    lt.backward()
    assert loss == pytest.approx(lt.item(), rel=1e-12)
    np.testing.assert_allclose(ds, st.grad.numpy(), atol=1e-12)


def test_hinge_loss_by_hand():
    # Scores (cat, owl, turtle) for a cat image: max(0, 1 + 2 - 3) + max(0, 1 + 3.5 - 3) = 0 + 1.5.
    loss = R.MulticlassHinge().forward(np.array([[3.0, 2.0, 3.5]]), np.array([0]))
    assert loss == pytest.approx(1.5)


def test_gradient_check_of_a_whole_small_network():
    net = R.Sequential(
        [
            R.Conv2d(1, 2, 3, padding=1, seed=5),
            R.BatchNorm(2),
            R.Tanh(),
            R.MaxPool2d(2),
            R.Flatten(),
            R.Linear(2 * 2 * 2, 3, seed=6),
        ]
    )
    errors = R.gradient_check(net, _input((3, 1, 4, 4), seed=4))
    assert set(errors) == {"x", "0.weight", "0.bias", "1.gamma", "1.beta", "5.weight", "5.bias"}
    assert max(errors.values()) < 1e-6, errors


def test_relative_error_scale_and_zero_gradients():
    a = np.array([1.0, 1e-9, -2.0])
    assert R.relative_error(a, a + np.array([0, 1e-7, 0])) == pytest.approx(1e-7 / 2)  # relative to max entry
    assert R.relative_error(np.zeros(3), np.full(3, 3e-8)) == pytest.approx(3e-8)  # zero gradient: absolute
    assert R.relative_error(np.zeros(3), np.full(3, 1e-3)) == 1.0


def test_gradient_check_detects_a_wrong_backward():
    class WrongTanh(R.Tanh):
        def backward(self, dout):
            return dout * (1.0 - self._t)  # forgot the square

    assert R.gradient_check(WrongTanh(), _input((3, 4)))["x"] > 1e-2


# ---------------------------------------------------------------- the lecture's worked examples


def test_lecture_2x2_max_pool():
    x = np.array([[12, 20, 30, 0], [8, 12, 2, 0], [34, 70, 37, 4], [112, 100, 25, 12]], dtype=float)
    out = R.MaxPool2d(2).forward(x[None, None])
    np.testing.assert_array_equal(out[0, 0], [[20, 30], [112, 37]])


def test_lecture_1d_max_pool_backprop():
    # Sliding window of size 3 (one pixel of padding each side, stride 1) over h.
    pool = R.MaxPool2d((1, 3), stride=1, padding=(0, 1))
    h = np.array([3, 5, 6, 2, 2, 9, 4], dtype=float)[None, None, None]
    np.testing.assert_array_equal(pool.forward(h).ravel(), [5, 6, 6, 6, 9, 9, 9])
    delta = np.arange(1, 8, dtype=float)[None, None, None]
    np.testing.assert_array_equal(pool.backward(delta).ravel(), [0, 1, 9, 0, 0, 18, 0])


def test_lecture_striding_backprop():
    stride = R.Stride((1, 2))
    h = np.array([3, 5, 6, 2, 2, 9, 4, 5], dtype=float)[None, None, None]
    np.testing.assert_array_equal(stride.forward(h).ravel(), [3, 6, 2, 4])
    np.testing.assert_array_equal(
        stride.backward(np.array([1, 2, 3, 4.0])[None, None, None]).ravel(), [1, 0, 2, 0, 3, 0, 4, 0]
    )


def test_lecture_overlapping_max_pool_z3_s2():
    image = np.zeros((10, 10))
    image[2:7, 3:8] = 90
    image[5, 4] = 0
    image[8, 2] = 90
    out = R.MaxPool2d(3, stride=2).forward(image[None, None])[0, 0]
    # Last frame of "max-pooling with z = 3 and s = 2": the text keeps these cells ('.' lost).
    want = [
        ["0", "90", "90", "90"],
        [".", "90", "90", "90"],
        [".", "90", "90", "90"],
        ["90", "90", "90", "90"],
    ]
    for i, row in enumerate(want):
        for j, v in enumerate(row):
            if v != ".":
                assert out[i, j] == float(v), (i, j)


def test_lp_pool_limits():
    x = np.abs(_input((1, 1, 4, 4))) + 0.1
    avg = R.AvgPool2d(2).forward(x)
    np.testing.assert_allclose(R.LpPool2d(1, 2).forward(x), avg)  # p = 1: average
    np.testing.assert_allclose(
        R.LpPool2d(200, 2).forward(x), R.MaxPool2d(2).forward(x), rtol=1e-2
    )  # p -> inf: max


def test_batchnorm_eval_uses_running_statistics():
    bn = R.BatchNorm(2, momentum=1.0)  # momentum 1: running stats = last batch's
    x = _input((50, 2))
    y_train = bn.forward(x)
    bn.eval()
    y_eval = bn.forward(x)
    # Same statistics up to the unbiased (m / (m - 1)) correction of the running variance.
    np.testing.assert_allclose(y_eval, y_train * np.sqrt(49 / 50), rtol=1e-5)
    assert np.abs(bn.forward(x + 5.0) - y_eval).max() > 1.0  # eval does not re-centre a shifted batch


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(DataError, match=r"\(N, 3, H, W\)"):
        R.Conv2d(3, 2, 3).forward(np.zeros((1, 2, 5, 5)))
    with pytest.raises(ConfigError, match="kernel_size"):
        R.Conv2d(3, 2, 0)
    with pytest.raises(DataError, match="targets"):
        R.SoftmaxCrossEntropy().forward(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ConfigError, match="needs target"):
        R.gradient_check(R.MulticlassHinge(), np.zeros((2, 3)))
