"""The README's exact parameter and MAC totals, pinned: a counting change of one MAC fails here.

Ranges such as "~15.5 GMACs" would let a dropped bias or a miscounted pooling layer through; these
are the numbers the README prints (224 px, 1000 classes; LeNet-5 at its 1x32x32 digits input).
"""

from __future__ import annotations

import pytest

import cnnkit

README_TABLE = {  # model: (parameters, MACs)
    "alexnet": (61_100_840, 714_197_696),
    "vgg16": (138_357_544, 15_470_289_408),
    "resnet18": (11_689_512, 1_819_065_856),
    "mobilenet_v1": (4_231_976, 578_875_904),
}


@pytest.mark.parametrize("name", sorted(README_TABLE))
def test_imagenet_models_at_224_px(name):
    s = cnnkit.summary(name, input_size=224)
    assert tuple(s.input_size) == (3, 224, 224)
    assert (s.totals.params, s.totals.macs) == README_TABLE[name]
    assert s.totals.flops == 2 * s.totals.macs


def test_lenet5_on_digits_by_name():
    s = cnnkit.summary("lenet5")  # its declared input: 1 x 32 x 32, 10 classes
    assert tuple(s.input_size) == (1, 32, 32)
    assert (s.totals.params, s.totals.macs) == (61_706, 416_520)


def test_lenet5_on_digits_from_the_trained_run(trained_run):
    s = cnnkit.summary(str(trained_run))  # `cnnkit summary runs/demo`: the run's own model and size
    assert (s.totals.params, s.totals.macs) == (61_706, 416_520)
