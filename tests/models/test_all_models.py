"""Every registered model builds, runs forward and backward, and honours the model contract."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnkit.models import create_model, list_models, model_entry
from cnnkit.models.registry import ModelInfo

# The largest models at 224 px take 2-5 s each on 2 CPU cores (the whole file: ~80 s); marked slow
# so `-m "not slow"` gives a quick loop, but CI runs them.
HEAVY_AT_DEFAULT = {"vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn", "resnet101", "resnet152",
                    "densenet161", "densenet169", "densenet201"}  # fmt: skip


def small_side(name: str) -> int:
    side = model_entry(name).default_input[1]
    return side if side < 64 else 32


def _check_info(model: nn.Module, c: int, side: int, num_classes: int) -> None:
    info = model.info
    assert isinstance(info, ModelInfo)
    assert info.input_size == (c, side, side) and info.num_classes == num_classes
    assert len(info.mean) == len(info.std) == c
    head = model.get_submodule(info.classifier)
    out = getattr(head, "out_features", None) or getattr(head, "out_channels", None) or head.num_classes
    assert out == num_classes


def _forward_backward(model: nn.Module, x: torch.Tensor, num_classes: int) -> None:
    model.train()
    y = model(x)
    assert isinstance(y, torch.Tensor) and y.shape == (x.shape[0], num_classes)
    assert torch.isfinite(y).all()
    nn.functional.cross_entropy(y, torch.arange(x.shape[0]) % num_classes).backward()
    unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not unused, f"parameters that received no gradient: {unused[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("name", list_models())
def test_small_grey_input(name: str) -> None:
    """Digits-style use: 1 channel, 10 classes, 28-32 px; plus reset_classifier and the feature/head split."""
    side = small_side(name)
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, in_chans=1, input_size=(side, side))
    _check_info(model, 1, side, 10)
    x = torch.randn(2, 1, side, side)
    _forward_backward(model, x, 10)

    model.eval()
    with torch.no_grad():
        feats = model.forward_features(x)
        assert isinstance(feats, torch.Tensor) and feats.shape[0] == 2
        torch.testing.assert_close(model.forward_head(feats), model(x))
        model.reset_classifier(7)
        assert model(x).shape == (2, 7)
    assert model.info.num_classes == 7


def _default_cases() -> list:
    cases = []
    for name in list_models():
        c, h, _ = model_entry(name).default_input
        if h < 64:
            continue  # the small-input test above already runs these at their default size
        marks = [pytest.mark.slow] if name in HEAVY_AT_DEFAULT else []
        cases.append(pytest.param(name, c, h, marks=marks, id=f"{name}-{h}"))
    return cases


@pytest.mark.parametrize(("name", "c", "side"), _default_cases())
def test_default_input(name: str, c: int, side: int) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=1000, in_chans=c, input_size=side)
    _check_info(model, c, side, 1000)
    # One image: this test is about the layout at the default size (a 224 px backward pass of VGG-19
    # costs ~2 s per image on one core); test_small_grey_input runs every model on a batch of two.
    _forward_backward(model, torch.randn(1, c, side, side), 1000)


def _min_size_cases() -> list:
    return [pytest.param(n, s, id=f"{n}-{s}") for n in list_models()
            for s in sorted({small_side(n), model_entry(n).default_input[1]})]  # fmt: skip


@pytest.mark.parametrize(("name", "side"), _min_size_cases())
def test_declared_min_size(name: str, side: int, no_init: None) -> None:
    """``info.min_size`` is the smallest input the built layout accepts (shapes only, so no init)."""
    model = create_model(name, num_classes=10, input_size=side).eval()
    c, m = model.info.input_size[0], model.info.min_size
    if model.info.family in ("linear", "stn") or name in ("lenet1", "lenet5"):
        pytest.skip("flattening models take exactly their build size")
    with torch.no_grad():
        assert model(torch.zeros(1, c, m, m)).shape == (1, 10)
        if m > 1:
            with pytest.raises(RuntimeError):
                model(torch.zeros(1, c, m - 1, m - 1))


@pytest.mark.parametrize("name", ["resnet20", "vgg11_bn"])
def test_acceptance_models_on_digits_shape(name: str) -> None:
    # The engine's acceptance run: `cnnkit train --model NAME` on digits (grey, 32 px, 10 classes).
    model = create_model(name, num_classes=10, in_chans=1, input_size=(32, 32))
    _forward_backward(model, torch.randn(4, 1, 32, 32), 10)
