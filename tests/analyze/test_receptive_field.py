"""Receptive fields: the lectures' examples, and the reported field against an empirical one.

The empirical field of one output unit is the set of input pixels with a non-zero gradient. With
positive constant weights, zero biases and an all-ones input every path contributes a positive
amount (ReLUs pass everything, nothing cancels), so that set is exactly the theoretical field
clipped to the image. Max pooling routes the gradient to a single input, so the empirical models use
average pooling of the same geometry (the field of a pooling window does not depend on the reduction).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.analyze import ReceptiveField, summary
from cnnkit.models.vgg import CFGS


def positive_constants(model: nn.Module) -> nn.Module:
    """Weights 1/fan-in (values stay O(1) however deep), biases 0, BN an identity-like positive scale."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.fill_(1.0 / m.weight[0].numel())
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.BatchNorm2d):
                m.reset_parameters()
                m.reset_running_stats()
    return model.eval()


def max_to_avg(model: nn.Module) -> nn.Module:
    """Swap every MaxPool2d for an AvgPool2d with the same window (for gradients that reach every input)."""
    for name, m in list(model.named_children()):
        if isinstance(m, nn.MaxPool2d):
            setattr(model, name, nn.AvgPool2d(m.kernel_size, m.stride, m.padding, ceil_mode=m.ceil_mode,
                                              count_include_pad=True))  # fmt: skip
        else:
            max_to_avg(m)
    return model


def empirical_window(
    model: nn.Module,
    input_size: tuple[int, int, int],
    index: tuple[int, int] | None = None,
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """(top, left), (bottom, right) of the input pixels that reach output unit ``index`` (default:
    the central one), and that index."""
    x = torch.ones(1, *input_size, requires_grad=True)
    y = model(x)
    h, w = y.shape[-2:]
    i, j = index if index is not None else (h // 2, w // 2)
    y[0, :, i, j].sum().backward()
    hit = x.grad[0].abs().sum(0) > 0
    rows = torch.where(hit.any(1))[0]
    cols = torch.where(hit.any(0))[0]
    return (int(rows.min()), int(cols.min())), (int(rows.max()), int(cols.max())), (i, j)


def check_against_empirical(model: nn.Module, input_size: tuple[int, int, int]) -> ReceptiveField:
    rf = summary(model, input_size=input_size).rows[-1].rf
    assert rf is not None and rf.is_local
    lo, hi, index = empirical_window(model, input_size)
    (top, left), (bottom, right) = rf.window(index)
    # The test is only meaningful if the theoretical window lies inside the image (else it is clipped).
    assert top >= 0 and left >= 0 and bottom < input_size[1] and right < input_size[2], (
        "enlarge the test input"
    )
    assert (lo, hi) == ((top, left), (bottom, right))
    assert rf.size == (hi[0] - lo[0] + 1, hi[1] - lo[1] + 1)
    return rf


def test_stacked_3x3_convolutions_see_5x5_then_7x7():
    # The VGG lecture: "two 3x3 layers 5x5 receptive field, three 3x3 layers 7x7".
    net = nn.Sequential(*(nn.Conv2d(1, 1, 3, padding=1) for _ in range(3)))
    rows = summary(net, input_size=(1, 16, 16)).rows
    assert [r.rf.size for r in rows] == [(1, 1), (3, 3), (5, 5), (7, 7)]
    assert all(r.rf.jump == (1, 1) for r in rows)


def test_pooling_after_5x5_conv_sees_6x6():
    # Seed 004: "F=5, S=1, P=2: from 5x5 to 6x6" after 2x2 max pooling; the jump doubles.
    net = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.MaxPool2d(2))
    rf = summary(net, input_size=(1, 28, 28)).rows[-1].rf
    assert rf.size == (6, 6) and rf.jump == (2, 2) and rf.start == (0.5, 0.5)


def test_small_stack_with_stride_dilation_and_pooling_matches_gradient():
    net = nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(),
        nn.Conv2d(3, 3, 3, stride=2, padding=1),
        nn.AvgPool2d(2),
        nn.Conv2d(3, 3, 3, dilation=2, padding=2), nn.ReLU(),
        nn.Conv2d(3, 3, (5, 3), stride=(1, 2)),  # rectangular kernel and stride
        nn.AvgPool2d(3, stride=2, padding=1),
    )  # fmt: skip
    rf = check_against_empirical(positive_constants(net), (2, 96, 96))
    assert rf.jump[0] != rf.jump[1]  # rows and columns are tracked separately


def test_max_and_average_pooling_have_the_same_field():
    a = summary(nn.Sequential(nn.Conv2d(1, 1, 3), nn.MaxPool2d(3, 2)), input_size=(1, 32, 32)).rows[-1].rf
    b = summary(nn.Sequential(nn.Conv2d(1, 1, 3), nn.AvgPool2d(3, 2)), input_size=(1, 32, 32)).rows[-1].rf
    assert a == b


def slim_vgg16_features() -> nn.Sequential:
    """VGG-16's feature extractor geometry (13 3x3 convs, 5 2x2 pools) with 2 channels (the field does
    not depend on the width), average pooling for the gradient test."""
    layers: list[nn.Module] = []
    c = 3
    for v in CFGS["vgg16"]:
        if v == "M":
            layers.append(nn.AvgPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c, 2, 3, padding=1), nn.ReLU()]
            c = 2
    return positive_constants(nn.Sequential(*layers))


def test_vgg16_features_field_matches_gradient():
    real = summary("vgg16")  # the registered model: 196 at conv5_3, 212 after the last pooling
    assert real.row("features.28").rf.size == (196, 196)
    assert real.row("features.30").rf.size == (212, 212) and real.row("features.30").rf.jump == (32, 32)
    slim = slim_vgg16_features()
    # The slim copy has the same geometry: identical fields layer by layer.
    slim_rows = summary(slim, input_size=(3, 224, 224)).rows
    assert [r.rf for r in slim_rows] == [r.rf for r in real.rows if r.name.startswith(("input", "features"))]
    for end in (4, 16, 30):  # after pool1, pool3, pool5 (the whole feature extractor)
        check_against_empirical(slim[: end + 1], (3, 224, 224))


class Branchy(nn.Module):
    """Inception-style concatenation of unequal branches, a ResNet-style addition and an option-A
    strided slice, all written as functional ops between modules."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 2, 3, padding=1)
        self.b3 = nn.Conv2d(2, 2, 3, padding=1)
        self.b5 = nn.Sequential(nn.Conv2d(2, 2, 3, padding=1), nn.Conv2d(2, 2, 3, padding=2, dilation=2))
        self.down = nn.Conv2d(4, 4, 3, stride=2, padding=1)
        self.pool = nn.AvgPool2d(3, stride=1, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = torch.cat([self.b3(x), self.b5(x)], 1)  # union of a 5x5 and a 9x9 view: the larger
        shortcut = x[:, :, ::2, ::2]  # 1x1 subsampling (ResNet option A)
        x = F.relu(self.down(x)) + shortcut
        return self.pool(x)


def test_branches_and_merges_follow_the_graph():
    net = positive_constants(Branchy())
    s = summary(net, input_size=(1, 48, 48))
    b3, b5 = s.row("b3").rf, s.row("b5.1").rf
    assert (b3.size, b5.size) == ((5, 5), (9, 9))
    rf = check_against_empirical(net, (1, 48, 48))
    assert rf.size == (9 + 2 + 2 * 2, 9 + 2 + 2 * 2)  # stride-2 conv adds 2, 3x3 pool at jump 2 adds 4


def test_resnet20_field_matches_gradient():
    from cnnkit.models import create_model

    model = create_model("resnet20")  # CIFAR ResNet: option-A shortcuts (strided slices + zero channels)
    trunk = positive_constants(max_to_avg(model))

    class Features(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.m = trunk

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.m.forward_features(x)

    rf = check_against_empirical(Features(), (3, 112, 112))
    assert rf.size == (81, 81) and rf.jump == (4, 4)
    assert summary("resnet20").features_rf == rf


def test_global_pooling_and_fc_make_the_field_global():
    s = summary("resnet18")
    assert s.row("layer4.1.relu (2)").rf.is_local
    assert s.row("avgpool").rf.kind == "global"
    assert s.row("fc").rf.kind == "global" and s.row("fc").rf.size_str() == "global"
    # A squeeze-and-excitation gate multiplies every position by a function of the whole map.
    se = summary("se_resnet18")
    assert se.row("layer1.0.conv2").rf.is_local
    assert se.row("layer1.0.bn2").rf.is_local
    assert se.features_rf.kind == "global"


@pytest.mark.parametrize("name", ["googlenet", "densenet121"])
def test_concatenating_networks_take_the_largest_branch(name: str):
    s = summary(name)
    assert s.features_rf is not None and s.features_rf.is_local
    convs = [r.rf.size[0] for r in s.rows if r.kind == "conv"]
    assert s.features_rf.size[0] == max(convs)  # the deepest path decides
