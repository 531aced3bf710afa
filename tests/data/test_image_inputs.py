"""One conversion for every form of image a user holds (file, PIL, NumPy, tensor)."""

import numpy as np
import pytest
import torch
from PIL import Image

from cnnkit.data.images import to_image_tensor
from cnnkit.errors import DataError


@pytest.fixture
def gray(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    Image.fromarray(a).save(tmp_path / "a.png")
    return a, tmp_path / "a.png"


def test_every_form_gives_the_pixels_of_the_file(gray):
    a, path = gray
    ref = to_image_tensor(path, 1, (32, 32))
    assert ref.dtype == torch.uint8 and ref.shape == (1, 32, 32)
    forms = [
        str(path), Image.fromarray(a), a, a[:, :, None], a.astype(np.float32) / 255,
        torch.from_numpy(a), torch.from_numpy(a)[None], torch.from_numpy(a).float() / 255,
        torch.from_numpy(a)[None, None],
    ]  # fmt: skip
    for f in forms:
        assert torch.equal(to_image_tensor(f, 1, (32, 32)), ref), type(f)


def test_rgb_array_and_tensor_agree():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    t = to_image_tensor(a, 3, (16, 16))
    assert torch.equal(t, torch.from_numpy(a).permute(2, 0, 1))
    assert torch.equal(to_image_tensor(torch.from_numpy(a).permute(2, 0, 1), 3, (16, 16)), t)
    assert to_image_tensor(a, 1, (8, 8)).shape == (1, 8, 8)  # colour to grey, as for files


@pytest.mark.parametrize(
    "bad, words",
    [
        (np.zeros((3, 4, 5)), "shape"),
        (-torch.ones(3, 8, 8), "normalised"),
        (np.array([[np.nan, 1.0]]), "NaN"),
        (torch.zeros(7, 8, 8), "C x H x W"),
        (5, "type int"),
        ("no/such.png", "does not exist"),
    ],
)
def test_bad_inputs_name_the_problem(bad, words):
    with pytest.raises(DataError, match=words):
        to_image_tensor(bad, 1, (8, 8))
