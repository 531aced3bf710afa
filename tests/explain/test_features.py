"""What the network learned: filters, feature maps, receptive fields, top activations."""

from __future__ import annotations

import pytest
import torch

from cnnkit.explain import feature_maps, layer_filters, receptive_field, top_activations


@pytest.fixture(scope="module")
def lenet(trained_run):
    from cnnkit.explain import from_run
    from cnnkit.run import load_run

    return from_run(load_run(trained_run))


def test_receptive_field_of_lenet_follows_the_lecture_recurrence(lenet):
    # conv5 -> 5; pool2 -> 6, jump 2; conv5 -> 6 + 4 * 2 = 14, jump 2; pool2 -> 16, jump 4.
    rf = receptive_field(lenet, "features.3", (1, 32, 32))
    assert rf.size == (14, 14) and rf.jump == (2, 2)
    assert rf.box(0, 0) == (0, 0, 14, 14)  # unit (0, 0) of the 10x10 map sees the top-left 14x14
    assert rf.box(9, 9) == (18, 18, 32, 32)
    assert receptive_field(lenet, "features.5", (1, 32, 32)).size == (16, 16)
    assert receptive_field(lenet, "classifier.1", (1, 32, 32)).size == (32, 32)  # dense: everything


def test_first_layer_filters_and_feature_maps_have_the_layer_shapes(lenet):
    name, w = layer_filters(lenet)
    assert name == "features.0" and w.shape == (6, 1, 5, 5)
    maps = feature_maps(lenet, torch.rand(2, 1, 32, 32), "features.3")
    assert maps.shape == (2, 16, 10, 10)


def test_top_activations_are_the_highest_responses_and_boxes_fit_the_image(lenet, trained_run):
    from cnnkit.evaluate import run_data
    from cnnkit.run import load_run

    images = run_data(load_run(trained_run)).test.images[:120]
    top = top_activations(lenet, images, "features.3", unit=5, k=6)
    maps = feature_maps(lenet, images.float() / 255, "features.3")[:, 5].flatten(1).amax(1)
    assert top.index == maps.topk(6).indices.tolist()
    assert top.score == pytest.approx(maps.topk(6).values.tolist(), rel=1e-5)
    for top_, left, bottom, right in top.box:
        assert 0 <= top_ < bottom <= 32 and 0 <= left < right <= 32
        assert bottom - top_ <= 14 and right - left <= 14


def test_bad_unit_is_a_user_error(lenet):
    from cnnkit.errors import ConfigError

    with pytest.raises(ConfigError, match="out of range"):
        top_activations(lenet, torch.zeros(2, 1, 32, 32, dtype=torch.uint8), "features.3", unit=16)
