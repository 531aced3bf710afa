"""Parameter counts: torchvision's published numbers, and the papers' per-layer formulas."""

from __future__ import annotations

import pytest

from cnnkit.models import count_params, create_model

# torchvision's documented parameter counts (1000 classes, 3 x 224 x 224), and MobileNet v1's.
TORCHVISION_COUNTS = {
    "alexnet": 61_100_840,
    "vgg16": 138_357_544,
    "vgg19": 143_667_240,
    "googlenet": 6_624_904,  # without the auxiliary heads, as torchvision reports it
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "densenet121": 7_978_856,
    "squeezenet1_0": 1_248_424,
    "squeezenet1_1": 1_235_496,
    "mobilenet_v1": 4_231_976,
}


def imagenet_model(name: str, **kw):
    return create_model(name, num_classes=1000, in_chans=3, input_size=224, **kw)


@pytest.mark.parametrize("name", sorted(TORCHVISION_COUNTS))
def test_imagenet_parameter_counts(name: str, no_init: None) -> None:
    assert count_params(imagenet_model(name)) == TORCHVISION_COUNTS[name]


def test_classic_lenet5_matches_paper_breakdown() -> None:
    # LeCun et al. 1998, section II-B, layer by layer; C3's connections from the paper's Table I
    # (rows: S2 maps, columns: C3 maps), written out here independently of the model's table.
    table_i = [
        "X...XXX..XXXX.XX",
        "XX...XXX..XXXX.X",
        "XXX...XXX..X.XXX",
        ".XXX..XXXX..X.XX",
        "..XXX..XXXX.XX.X",
        "...XXX..XXXX.XXX",
    ]
    k = 5 * 5
    c1 = 6 * (k * 1 + 1)  # 156
    s2 = 6 * 2  # coefficient + bias per map: 12
    c3 = sum(row.count("X") for row in table_i) * k + 16  # 1,516
    s4 = 16 * 2  # 32
    c5 = 120 * (16 * k + 1)  # 48,120
    f6 = 84 * (120 + 1)  # 10,164
    expected = c1 + s2 + c3 + s4 + c5 + f6
    assert (c1, s2, c3, s4, c5, f6) == (156, 12, 1516, 32, 48120, 10164)
    assert expected == 60_000  # the paper's (and the lecture's) "60,000 parameters"
    model = create_model("lenet5", num_classes=10, classic=True)
    assert count_params(model) == expected  # the RBF prototypes are fixed: a buffer, not parameters
    by_layer = {n: sum(p.numel() for p in m.parameters()) for n, m in model.features.named_children()}
    assert [by_layer[n] for n in ("c1", "s2", "c3", "s4", "c5")] == [c1, s2, c3, s4, c5]
    trainable = create_model("lenet5", num_classes=10, classic=True, trainable_prototypes=True)
    assert count_params(trainable) == expected + 10 * 84


def test_lenet_family_counts_from_formulas() -> None:
    lenet1 = 4 * (25 + 1) + 12 * (4 * 25 + 1) + (12 * 4 * 4 + 1) * 10
    assert count_params(create_model("lenet1", num_classes=10)) == lenet1
    lenet5 = 6 * 26 + 16 * (6 * 25 + 1) + (16 * 5 * 5 + 1) * 120 + 121 * 84 + 85 * 10
    assert count_params(create_model("lenet5", num_classes=10)) == lenet5
    # The lecture's LeNet-300-100 table: 300 * (784 + 1) + 100 * (300 + 1) + 10 * (100 + 1)
    assert count_params(create_model("lenet300", num_classes=10)) == 300 * 785 + 100 * 301 + 10 * 101


def _basic_block_params(cin: int, cout: int) -> int:
    return cin * cout * 9 + cout * cout * 9 + 4 * cout  # two 3x3 convs (no bias) + two BNs


@pytest.mark.parametrize(("name", "n"), [("resnet20", 3), ("resnet56", 9), ("resnet110", 18)])
def test_cifar_resnet_counts(name: str, n: int) -> None:
    expected = 3 * 16 * 9 + 2 * 16  # stem conv + BN
    for cin, cout in ((16, 16), (16, 32), (32, 64)):
        expected += _basic_block_params(cin, cout) + (n - 1) * _basic_block_params(cout, cout)
    expected += 64 * 10 + 10  # option A shortcuts have no parameters
    model = create_model(name, num_classes=10)
    assert count_params(model) == expected
    # He et al. 2015, Table 6: 0.27M, 0.85M, 1.7M
    assert round(expected / 1e6, 2) == {"resnet20": 0.27, "resnet56": 0.85, "resnet110": 1.73}[name]


def test_cifar_resnet_option_b_adds_projections() -> None:
    a = count_params(create_model("resnet20", num_classes=10))
    b = count_params(create_model("resnet20", num_classes=10, shortcut="B"))
    assert b - a == (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)  # two 1x1 conv + BN projections


def test_se_resnet50_count_is_resnet50_plus_gates(no_init: None) -> None:
    expected = TORCHVISION_COUNTS["resnet50"]
    for planes, blocks in ((64, 3), (128, 4), (256, 6), (512, 3)):
        c = planes * 4
        r = c // 16
        expected += blocks * (c * r + r + r * c + c)  # two 1x1 convs with bias
    assert count_params(imagenet_model("se_resnet50")) == expected


@pytest.mark.parametrize(("width", "millions"), [(0.75, 2.6), (0.5, 1.3), (0.25, 0.5)])
def test_mobilenet_width_multiplier_matches_paper(width: float, millions: float, no_init: None) -> None:
    # Howard et al. 2017, Table 6.
    assert round(count_params(imagenet_model("mobilenet_v1", width_mult=width)) / 1e6, 1) == millions


def test_alexnet_original_counts(no_init: None) -> None:
    convs = [(3, 96, 11, 1), (96, 256, 5, 2), (256, 384, 3, 1), (384, 384, 3, 2), (384, 256, 3, 2)]
    fcs = [(256 * 6 * 6, 4096), (4096, 4096), (4096, 1000)]
    fc = sum(i * o + o for i, o in fcs)
    full = sum(i * o * k * k + o for i, o, k, _ in convs) + fc
    split = sum(i // g * o * k * k + o for i, o, k, g in convs) + fc
    assert count_params(imagenet_model("alexnet", original=True)) == full
    assert count_params(imagenet_model("alexnet", original=True, split_gpus=True)) == split
    assert round(split / 1e6) == 61  # "60 million parameters" (Krizhevsky et al. 2012)
