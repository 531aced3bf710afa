"""Class subsets and N labelled images per class, as a function and as a ``subset:`` dataset name."""

from __future__ import annotations

import pytest
import torch

from cnnkit.data import load_dataset
from cnnkit.errors import DataError
from cnnkit.transfer import SubsetSpec, subset_dataset, subset_spec


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_subset_relabels_keeps_names_ids_and_every_test_image(digits):
    sub = subset_dataset(digits, classes=["7", "5", "9"], per_class=10, seed=3)
    assert sub.classes == ["7", "5", "9"]  # the order given decides the new labels
    assert sub.train.class_counts(3) == [10, 10, 10]
    # Ids are the original ones and point at images of the right original class.
    old_label = {i: int(y) for i, y in zip(digits.train.ids, digits.train.labels, strict=True)}
    for i, y in zip(sub.train.ids, sub.train.labels.tolist(), strict=True):
        assert old_label[i] == [7, 5, 9][y]
    # The test split is never thinned: all of its 5s, 7s and 9s are there.
    want = {i for i, y in zip(digits.test.ids, digits.test.labels.tolist(), strict=True) if y in (5, 7, 9)}
    assert set(sub.test.ids) == want
    assert len(sub.val) == sum(int(y) in (5, 7, 9) for y in digits.val.labels)  # val kept unless asked
    assert torch.equal(sub.train.images[0], digits.train.images[digits.train.ids.index(sub.train.ids[0])])


def test_subset_is_seeded_and_val_per_class_limits_validation(digits):
    a = subset_dataset(digits, classes=[5, 6], per_class=4, val_per_class=0, seed=1)
    b = subset_dataset(digits, classes=[5, 6], per_class=4, val_per_class=0, seed=1)
    c = subset_dataset(digits, classes=[5, 6], per_class=4, val_per_class=0, seed=2)
    assert a.train.ids == b.train.ids and a.train.ids != c.train.ids
    assert len(a.val) == 0


def test_subset_errors_name_the_problem(digits):
    with pytest.raises(DataError, match="unknown class '12'"):
        subset_dataset(digits, classes=[1, 12])
    with pytest.raises(DataError, match="listed twice"):
        subset_dataset(digits, classes=["3", 3])
    with pytest.raises(DataError, match="per_class .*500 is more than the .* training images"):
        subset_dataset(digits, classes=[1, 2], per_class=500)
    with pytest.raises(DataError, match="only one class selected"):
        subset_dataset(digits, classes=[1])


def test_subset_name_loads_the_same_split_through_the_data_registry(digits):
    name = subset_spec("digits", classes=[5, 6, 7, 8, 9], per_class=10, val_per_class=0, test_split=0.5, seed=4)
    assert SubsetSpec.parse(name.split(":", 1)[1]).to_name() == name
    ds = load_dataset(name, input_size=32)
    direct = subset_dataset(load_dataset("digits", val_split=0.15, test_split=0.5, seed=4), [5, 6, 7, 8, 9], 10, 0,
                            seed=4)  # fmt: skip
    assert ds.classes == ["5", "6", "7", "8", "9"]
    assert ds.split_ids() == direct.split_ids()
    assert ds.image_shape == (1, 32, 32) and len(ds.train) == 50 and len(ds.val) == 0
    with pytest.raises(DataError, match="unknown subset option 'per_klass'"):
        load_dataset("subset:digits?per_klass=3")
