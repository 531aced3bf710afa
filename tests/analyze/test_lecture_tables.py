"""The summary reproduces the lectures' tables: VGG-16 (seed 001) and the parameter examples (seed 000)."""

from __future__ import annotations

import pytest
from torch import nn

from cnnkit.analyze import conv_macs, conv_params, output_size, summary

# VGG-16 (configuration D): output channels of each 3x3 conv, "M" = 2x2 max pooling.
VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def lecture_vgg16_table(size: int = 224) -> list[tuple[str, int, int]]:
    """The seed-001 table computed from the architecture: (layer, memory, weights) per row.

    "memory" is H*W*C of the layer's output; "weights" counts filter weights only (the table writes
    ``(3*3*3)*64 = 1,728``, no biases), FC weights are in*out.
    """
    rows = [("INPUT", size * size * 3, 0)]
    c, hw = 3, size
    for v in VGG16:
        if v == "M":
            hw //= 2
            rows.append(("POOL2", hw * hw * c, 0))
        else:
            rows.append((f"CONV3-{v}", hw * hw * v, 3 * 3 * c * v))
            c = v
    for n_in, n_out in ((hw * hw * c, 4096), (4096, 4096), (4096, 1000)):
        rows.append(("FC", n_out, n_in * n_out))
    return rows


@pytest.fixture(scope="module")
def vgg16():
    return summary("vgg16", input_size="3x224x224")


def test_vgg16_reference_numbers_are_the_lectures():
    # Guard the reference itself: the numbers printed in the seed-001 table.
    table = lecture_vgg16_table()
    assert table[1] == ("CONV3-64", 3_211_264, 1_728)  # 224*224*64 = 3.2M, (3*3*3)*64
    assert table[5] == ("CONV3-128", 1_605_632, 147_456)
    assert table[18] == ("POOL2", 25_088, 0)  # 7*7*512 = 25K
    assert table[19] == ("FC", 4096, 102_760_448)  # 7*7*512*4096
    assert table[-1] == ("FC", 1000, 4_096_000)


def test_vgg16_rows_match_the_lecture_table(vgg16):
    table = lecture_vgg16_table()
    counted = [r for r in vgg16.rows if r.counted]  # the rows the lecture lists
    assert [r.kind for r in counted] == ["input"] + [
        "pool" if n == "POOL2" else "conv" for n, _, _ in table[1:-3]
    ] + ["linear"] * 3
    for (name, memory, weights), row in zip(table, counted, strict=True):
        assert row.act_elems == memory, (name, row.name)
        bias = row.output_shape[0] if row.kind in ("conv", "linear") else 0
        assert row.params - bias == weights, (name, row.name)  # the lecture leaves biases out


def test_vgg16_totals(vgg16):
    t = vgg16.totals
    assert t.params == 138_357_544  # "TOTAL params: 138M"
    assert t.trainable == t.params and t.frozen == 0
    assert t.macs == 15_470_289_408  # ~15.5 GMACs; the README's exact total (same as fvcore)
    assert t.flops == 2 * t.macs
    # Activation memory = the sum of the table's rows (input + conv/pool/FC outputs). The table's TOTAL
    # line says "24M * 4 bytes ~= 93MB" but its own rows add up to 15.2M (cs231n.github.io#88).
    assert t.activations == sum(m for _, m, _ in lecture_vgg16_table()) == 15_237_608
    assert t.act_bytes == 4 * t.activations  # float32: ~61 MB per image forward
    assert t.act_bytes_train == 2 * t.act_bytes  # "~*2 for bwd"
    assert t.param_bytes == 4 * t.params


def test_vgg16_adaptive_pool_is_a_no_op_not_counted(vgg16):
    # torchvision's layout pools 7x7 to 7x7: no new feature map, not a row of the lecture.
    row = vgg16.row("avgpool")
    assert row.output_shape == (512, 7, 7) and not row.counted


def test_seed000_parameter_examples():
    # 32x32x3 input; 5x5 conv K=8, 5x5 conv K=16, 1x1 conv K=32: [(P*P*d)+1]*K.
    net = nn.Sequential(nn.Conv2d(3, 8, 5), nn.Conv2d(8, 16, 5), nn.Conv2d(16, 32, 1))
    s = summary(net, input_size=(3, 32, 32))
    assert [r.params for r in s.rows if r.kind == "conv"] == [608, 3216, 544]
    assert [conv_params(5, 3, 8), conv_params(5, 8, 16), conv_params(1, 16, 32)] == [608, 3216, 544]
    assert s.totals.params == 608 + 3216 + 544


def test_grouped_and_dilated_convolution_counts():
    conv = nn.Conv2d(8, 16, 3, padding=2, dilation=2, groups=4)
    s = summary(nn.Sequential(conv), input_size=(8, 20, 20))
    row = s.row("0")
    assert row.output_shape == (16, 20, 20)
    assert row.params == conv_params(3, 8, 16, groups=4) == (3 * 3 * 2 + 1) * 16
    assert row.macs == conv_macs(20, 20, 3, 8, 16, groups=4) == 20 * 20 * 16 * 2 * 9
    assert row.rf.size == (5, 5)  # a 3x3 kernel with dilation 2 spans 5 pixels


def test_seed000_size_that_does_not_divide_is_flagged():
    # (7-3)/3+1 = 2.33: the lecture's example of a stride that does not fit; PyTorch floors to 2.
    assert output_size(7, 3, stride=3) == pytest.approx(2.3333, abs=1e-4)
    s = summary(nn.Sequential(nn.Conv2d(1, 1, 3, stride=3)), input_size=(1, 7, 7))
    row = s.row("0")
    assert row.output_shape == (1, 2, 2)
    assert row.note == "(7-3+0)/3+1 = 2.33, uses 2"
    # ceil_mode pooling keeps the incomplete window: the note shows the size actually used.
    pooled = summary(nn.Sequential(nn.MaxPool2d(3, 3, ceil_mode=True)), input_size=(1, 7, 7))
    assert pooled.row("0").note == "(7-3+0)/3+1 = 2.33, uses 3"
    # A size that divides carries no note: (32 + 2*2 - 5)/1 + 1 = 32 (seed 000's padding example).
    ok = summary(nn.Sequential(nn.Conv2d(3, 8, 5, padding=2)), input_size=(3, 32, 32))
    assert ok.row("0").output_shape == (8, 32, 32) and ok.row("0").note == ""


def test_alexnet_first_layer_note():
    # The famous 224-vs-227 mismatch: (224-11+2*2)/4+1 = 55.25, PyTorch uses 55.
    s = summary("alexnet")
    assert s.row("features.0").note == "(224-11+4)/4+1 = 55.25, uses 55"
