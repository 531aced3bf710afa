"""The tiny NumPy CNN, built only from the reference layers, learns the 8x8 digits."""

from __future__ import annotations

import numpy as np
import pytest

from cnnkit.classic.datasets import load_classic_dataset
from cnnkit.classic.reference import SGD, Linear, NumpyCNN, train_numpy_cnn
from cnnkit.errors import ConfigError, DataError


def test_numpy_cnn_reaches_the_readmes_accuracy_on_digits():
    # README: "NumPy CNN from cnnkit.classic.reference, 8 epochs: 96.67%" (261 of 270 test digits),
    # within ~1 point for BLAS builds that round differently.
    d = load_classic_dataset("digits", seed=0)
    res = train_numpy_cnn(d.x_train[:, None], d.y_train, d.x_val[:, None], d.y_val, epochs=8, seed=0)
    assert len(res.train_loss) == 8 and res.train_loss[-1] < res.train_loss[0]
    test_acc = float((res.model.predict(d.x_test[:, None]) == d.y_test).mean())
    assert test_acc == pytest.approx(0.9667, abs=0.01), test_acc
    assert res.val_acc[-1] >= 0.93
    assert not res.model.training  # returned in eval mode: BatchNorm uses its running statistics


def test_training_is_seeded():
    d = load_classic_dataset("digits", seed=0)
    x, y = d.x_train[:200, None], d.y_train[:200]
    a = train_numpy_cnn(x, y, epochs=1, seed=3)
    b = train_numpy_cnn(x, y, epochs=1, seed=3)
    assert a.train_loss == b.train_loss
    for k, v in a.model.params.items():
        np.testing.assert_array_equal(v, b.model.params[k])


def test_sgd_momentum_update_rule():
    layer = Linear(2, 1, seed=0)
    w0 = layer.params["weight"].copy()
    layer.grads = {"weight": np.ones((1, 2)), "bias": np.ones(1)}
    opt = SGD(layer, lr=0.1, momentum=0.5)
    opt.step()  # v = g, w -= 0.1 g
    opt.step()  # v = 0.5 g + g, w -= 0.1 * 1.5 g
    np.testing.assert_allclose(layer.params["weight"], w0 - 0.1 * 2.5)
    with pytest.raises(ConfigError):
        SGD(layer, lr=-1)


def test_numpy_cnn_shapes_and_errors():
    model = NumpyCNN(num_classes=3, in_channels=2, input_size=(12, 8))
    assert model.forward(np.zeros((4, 2, 12, 8))).shape == (4, 3)
    with pytest.raises(DataError, match="train_numpy_cnn"):
        train_numpy_cnn(np.zeros((5, 8, 8)), np.zeros(5, dtype=int))
