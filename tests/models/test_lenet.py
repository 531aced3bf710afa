"""LeNet-5 as published (LeCun et al. 1998) and LeNet-1."""

from __future__ import annotations

import pytest
import torch

from cnnkit.errors import ModelError
from cnnkit.models import create_model
from cnnkit.models.layers import ScaledTanh
from cnnkit.models.lenet import PartialConv2d, RBFOutput, Subsampling


def test_scaled_tanh_constants() -> None:
    f = ScaledTanh()
    x = torch.tensor([-1.0, 0.0, 1.0, 100.0])
    y = f(x)
    # The paper picks A and S so that f(+-1) = +-1 and the asymptote is A = 1.7159.
    torch.testing.assert_close(y[:3], torch.tensor([-1.0, 0.0, 1.0]), atol=2e-4, rtol=0)
    assert y[3].item() == pytest.approx(1.7159)


def test_subsampling_is_coefficient_times_sum_plus_bias() -> None:
    s = Subsampling(2)
    with torch.no_grad():
        s.weight.copy_(torch.tensor([2.0, -1.0]))
        s.bias.copy_(torch.tensor([0.5, 0.0]))
    x = torch.arange(32.0).view(1, 2, 4, 4)
    y = s(x)
    assert y.shape == (1, 2, 2, 2)
    top_left = x[0, :, :2, :2].sum(dim=(1, 2))
    torch.testing.assert_close(y[0, :, 0, 0], top_left * torch.tensor([2.0, -1.0]) + torch.tensor([0.5, 0.0]))


def test_c3_connection_table_is_the_papers() -> None:
    model = create_model("lenet5", num_classes=10, classic=True)
    c3 = model.features.c3
    assert isinstance(c3, PartialConv2d)
    connected = (c3.dense_weight().abs().sum(dim=(2, 3)) > 0).T  # rows: S2 maps, columns: C3 maps
    table_i = ["X...XXX..XXXX.XX", "XX...XXX..XXXX.X", "XXX...XXX..X.XXX",
               ".XXX..XXXX..X.XX", "..XXX..XXXX.XX.X", "...XXX..XXXX.XXX"]  # fmt: skip
    expected = torch.tensor([[ch == "X" for ch in row] for row in table_i])
    assert torch.equal(connected, expected)


def test_c3_outputs_ignore_unconnected_maps() -> None:
    c3 = create_model("lenet5", num_classes=10, classic=True).features.c3
    x = torch.randn(1, 6, 14, 14, requires_grad=True)
    c3(x)[0, 0].sum().backward()  # C3 map 0 reads S2 maps 0, 1, 2 only
    per_map = x.grad.abs().sum(dim=(0, 2, 3))
    assert (per_map[:3] > 0).all() and (per_map[3:] == 0).all()


def test_rbf_output_is_minus_squared_distance() -> None:
    rbf = RBFOutput(84, 10)
    assert set(rbf.prototypes.unique().tolist()) == {-1.0, 1.0}
    x = torch.randn(3, 84)
    expected = -torch.cdist(x, rbf.prototypes) ** 2
    torch.testing.assert_close(rbf(x), expected, rtol=1e-4, atol=1e-3)
    # A point on prototype 4 is classified as 4 with logit 0.
    logits = rbf(rbf.prototypes[4:5])
    assert logits.argmax().item() == 4 and logits[0, 4].item() == 0.0


def test_classic_lenet5_trains_and_resets() -> None:
    torch.manual_seed(0)
    model = create_model("lenet5", num_classes=10, classic=True)
    assert "rbf.prototypes" in dict(model.named_buffers())  # fixed, as in the paper
    x, y = torch.randn(16, 1, 32, 32), torch.arange(16) % 10
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    first = None
    for _ in range(20):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first  # the logits (minus distances) train with plain cross-entropy
    model.reset_classifier(26)
    assert model(x).shape == (16, 26) and model.rbf.prototypes.shape == (26, 84)


def test_classic_lenet5_pads_mnist_size_to_32() -> None:
    model = create_model("lenet5", num_classes=10, classic=True, input_size=28)
    assert model.forward_features(torch.zeros(1, 1, 28, 28)).shape == (1, 120, 1, 1)


def test_lenet_rejects_tiny_inputs_and_bad_options() -> None:
    with pytest.raises(ModelError, match="at least 16x16"):
        create_model("lenet1", num_classes=10, input_size=8)
    with pytest.raises(ModelError, match="classic"):
        create_model("lenet5", num_classes=10, trainable_prototypes=True)


def test_lenet1_shapes() -> None:
    model = create_model("lenet1", num_classes=10)
    assert model.forward_features(torch.zeros(2, 1, 28, 28)).shape == (2, 12, 4, 4)
