"""Fully connected heads rewritten as convolutions give the same logits, and slide over larger images."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import cnnkit
from cnnkit.analyze.convolutionalize import convolutionalize, geometry
from cnnkit.errors import ModelError

# (model, builder arguments): LeNet-5, AlexNet-style (three FC layers after an overlapping 3->2 adaptive
# pool) and VGG-style heads at digit size, plus the 1998 LeNet-5 (RBF output) and a pure MLP.
HEADS = [
    ("lenet5", {}),
    ("lenet5", {"classic": True}),
    ("alexnet", {}),
    ("zfnet", {}),
    ("vgg11", {}),
    ("vgg11_bn", {}),
    ("lenet1", {}),
    ("lenet300", {}),
]


def _model(name: str, **kw) -> nn.Module:
    torch.manual_seed(0)
    return cnnkit.create_model(name, num_classes=10, in_chans=1, input_size=32, **kw).eval()


def _max_diff(model: nn.Module, fcn: nn.Module, size: tuple[int, int]) -> float:
    x = torch.randn(4, 1, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got, want = fcn(x), model(x)
    assert got.shape[-2:] == (1, 1)
    return float((got.flatten(1) - want).abs().max())


@pytest.mark.parametrize(("name", "kw"), HEADS, ids=[f"{n}{'-classic' if k else ''}" for n, k in HEADS])
def test_same_logits_at_the_training_size(name, kw):
    model = _model(name, **kw)
    fcn = convolutionalize(model, check=False).eval()
    assert not any(
        isinstance(m, nn.Linear) for m in fcn.head.modules()
    )  # every FC layer became a convolution
    tol = 1e-5 if not kw.get("classic") else 1e-5 * 100  # RBF logits are sums of 84 squares (hundreds)
    assert _max_diff(model, fcn, model.info.input_size[1:]) < tol


@pytest.mark.slow
@pytest.mark.parametrize("name", ["alexnet", "vgg11"])
def test_imagenet_size_heads_4096_wide(name):
    """The torchvision layouts: 6x6 (AlexNet) and 7x7 (VGG) kernels for the first FC layer, 1x1 after."""
    torch.manual_seed(0)
    model = cnnkit.create_model(name, num_classes=10, in_chans=3, input_size=224).eval()
    fcn = convolutionalize(model, check=False).eval()
    first = next(m for m in fcn.head.modules() if isinstance(m, nn.Conv2d))
    assert first.kernel_size == ((6, 6) if name == "alexnet" else (7, 7)) and first.out_channels == 4096
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert float((fcn(x).flatten(1) - model(x)).abs().max()) < 1e-5
        assert fcn(torch.randn(1, 3, 288, 320)).shape[-2:] == (3, 4)  # (288-224)/32+1, (320-224)/32+1


def test_a_larger_image_gives_one_window_per_stride_and_each_cell_is_that_window():
    model = _model("lenet5")
    fcn = convolutionalize(model).eval()
    geo = geometry(fcn)
    assert geo.stride == (4, 4) and geo.receptive_field == (32, 32)  # two 2x2 poolings; the 32 px window
    assert geo.start == (15.5, 15.5)  # the first cell's window is pixels 0..31
    big = torch.randn(1, 1, 40, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        out = fcn(big)
        assert out.shape == (1, 10, (40 - 32) // 4 + 1, (64 - 32) // 4 + 1)
        for i, j in [(0, 0), (1, 3), (2, 8)]:  # cell (i, j) = the original network on its window
            window = big[..., 4 * i : 4 * i + 32, 4 * j : 4 * j + 32]
            assert torch.allclose(out[0, :, i, j], model(window)[0], atol=1e-5)


def test_convolutionalize_is_exported_and_leaves_the_model_alone():
    model = _model("lenet5")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fcn = cnnkit.convolutionalize(model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert fcn.model is model  # features shared, not copied


@pytest.mark.parametrize(("name", "words"), [("se_resnet18", "se"), ("stn_lenet5", "stn")])
def test_models_that_see_the_whole_image_are_refused_with_the_layer_named(name, words):
    model = _model(name)
    with pytest.raises(ModelError) as e:
        convolutionalize(model)
    assert "not a sliding window" in str(e.value) and f".{words}." in str(e.value)
    assert e.value.hint


def test_global_pooling_heads_become_a_sliding_average():
    """ResNet-20 (global average pool + FC): an 8x8 average window over the last map, exact at 32 px."""
    model = _model("resnet20")
    fcn = convolutionalize(model).eval()
    assert any(isinstance(m, nn.AvgPool2d) and m.kernel_size == (8, 8) for m in fcn.head)
    assert _max_diff(model, fcn, (32, 32)) < 1e-5


def test_a_foreign_module_is_refused():
    with pytest.raises(ModelError, match="not a cnnkit model"):
        convolutionalize(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)))
