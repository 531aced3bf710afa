"""Loaders and augmentation: same contract in memory and streamed, seeded, sharded, batched."""

from __future__ import annotations

import pytest
import torch

from cnnkit.data import Augment, FileData, ImageData, Normalize, StreamLoader, TensorLoader, make_loader
from cnnkit.errors import ConfigError, DataError


@pytest.fixture
def files(tmp_path, fx):
    root = fx.make_clean_folder(tmp_path / "d", classes=("a", "b", "c"), per_class=9, size=(12, 12))
    paths = sorted(str(p) for p in root.rglob("*.png"))
    labels = torch.tensor([["a", "b", "c"].index(p.split("/")[-2]) for p in paths])
    return FileData(paths, labels, [p[len(str(root)) + 1 :] for p in paths], channels=3, size=(12, 12))


def _all(loader):
    xs, ys = zip(*list(loader), strict=True)
    return torch.cat(xs), torch.cat(ys)


@pytest.mark.parametrize("workers", [0, 1])
def test_stream_loader_yields_what_the_tensor_loader_yields(files, workers):
    mem = files.load()
    norm = Normalize((0.5, 0.4, 0.3), (0.2, 0.2, 0.2))
    aug = Augment.from_spec("translate=2,flip,jitter=0.1,erase=0.5")
    kw = dict(shuffle=True, augment=aug, seed=3, drop_last=False)
    t = TensorLoader(mem, 8, norm, **kw)
    s = StreamLoader(files, 8, norm, workers=workers, threads=2, **kw)
    assert len(t) == len(s) == 4 and s.num_samples == t.num_samples == 27
    for epoch in (0, 1):
        t.set_epoch(epoch)
        s.set_epoch(epoch)
        xt, yt = _all(t)
        xs, ys = _all(s)
        assert torch.equal(yt, ys) and torch.allclose(xt, xs)
        assert xs.dtype == torch.float32 and ys.dtype == torch.int64
    s.set_epoch(0)
    assert not torch.equal(_all(s)[1], ys)  # another epoch, another order


def test_sharding_covers_the_split_once_per_rank_set(files):
    norm = Normalize((0.5,) * 3, (0.2,) * 3)
    seen = []
    for rank in range(2):
        s = make_loader(files, 5, norm, shuffle=True, seed=1, rank=rank, world_size=2)
        assert isinstance(s, StreamLoader) and s.num_samples == 14  # 27 padded to 28, split in two
        seen.append(_all(s)[1])
    t = [_all(make_loader(files.load(), 5, norm, shuffle=True, seed=1, rank=r, world_size=2))[1] for r in range(2)]
    assert all(torch.equal(a, b) for a, b in zip(seen, t, strict=True))
    assert isinstance(make_loader(files.load(), 5, norm), TensorLoader)


def test_stream_loader_drops_a_file_that_fails_late_or_stops_when_strict(files):
    files.files[4] = files.files[4] + ".missing.png"  # gone after the scan
    norm = Normalize((0.5,) * 3, (0.2,) * 3)
    s = StreamLoader(files, 8, norm)
    with pytest.warns(UserWarning, match="missing.png"):
        x, y = _all(s)
    assert len(y) == 26 and list(s.skipped) == [files.files[4]]
    with pytest.raises(DataError, match="missing.png"):
        _all(StreamLoader(files, 8, norm, strict=True))


def test_file_data_subset_and_load(files):
    sub = files.subset([0, 5, 10])
    assert sub.ids == [files.ids[i] for i in (0, 5, 10)] and sub.image_shape == (3, 12, 12)
    data = sub.load()
    assert isinstance(data, ImageData) and data.images.shape == (3, 3, 12, 12)


# ----------------------------------------------------------------------------- augmentation
def test_augmentation_is_reproducible_from_the_seed_and_keeps_pixels_in_range():
    x = torch.rand(16, 3, 20, 20)
    for spec in ("translate=3", "translate=1.5", "rotate=15,scale=0.1,shear=5", "elastic=2", "flip", "jitter=0.3",
                 "erase=1", "translate=2,rotate=10,scale=0.1,elastic=1,flip,jitter=0.2,erase=0.5"):  # fmt: skip
        a = Augment.from_spec(spec)
        out1 = a(x, torch.Generator().manual_seed(5))
        out2 = a(x, torch.Generator().manual_seed(5))
        out3 = a(x, torch.Generator().manual_seed(6))
        assert torch.equal(out1, out2) and not torch.equal(out1, out3), spec
        assert out1.shape == x.shape and out1.min() >= 0 and out1.max() <= 1 + 1e-6, spec


def test_whole_pixel_translation_is_a_padded_random_crop():
    x = torch.arange(1, 4 * 1 * 6 * 6 + 1, dtype=torch.float32).view(4, 1, 6, 6)
    out = Augment.from_spec("translate=2")(x, torch.Generator().manual_seed(0))
    for i in range(4):  # each image is its original shifted by whole pixels, zeros shifted in
        kept = out[i][out[i] > 0]
        assert len(kept) >= 16 and set(kept.tolist()) <= set(x[i].flatten().tolist())
        assert torch.all(kept.diff() > 0)  # order preserved: a shift, no resampling


def test_augment_spec_errors_and_round_trip():
    assert Augment.from_spec("translate=4,flip").to_spec() == "translate=4,flip"
    assert not Augment.from_spec("none").enabled
    with pytest.raises(ConfigError, match="did you mean"):
        Augment.from_spec("rotat=3")
    with pytest.raises(ConfigError, match="erase"):
        Augment.from_spec("erase=2")


def test_crop_and_flip_fast_path_equals_crop_then_flip():
    x = torch.rand(32, 3, 9, 11)
    out = Augment.from_spec("translate=3,flip")(x, torch.Generator().manual_seed(2))
    g = torch.Generator().manual_seed(2)  # the same draws, applied the slow obvious way
    dy = (torch.rand(32, generator=g) * 7).floor().long()
    dx = (torch.rand(32, generator=g) * 7).floor().long()
    flip = torch.rand(32, generator=g) < 0.5
    xp = torch.nn.functional.pad(x, (3, 3, 3, 3))
    for i in range(32):
        ref = xp[i, :, dy[i] : dy[i] + 9, dx[i] : dx[i] + 11]
        assert torch.equal(out[i], ref.flip(-1) if flip[i] else ref)


def test_geometric_field_equals_affine_grid_with_the_same_draws():
    """The broadcast sampling field is F.affine_grid's (align_corners=False) for the same random draws."""
    import math

    x = torch.rand(8, 2, 13, 17)  # not square: rows and columns must not be swapped
    out = Augment.from_spec("translate=2,rotate=30,scale=0.2,shear=10")(x, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    ang, sh, s, tx, ty = ((torch.rand(8, generator=g) * 2 - 1) for _ in range(5))
    ang, sh, s = ang * math.radians(30), sh * math.radians(10), 1 + s * 0.2
    tx, ty = tx * 2 * 2 / 17, ty * 2 * 2 / 13
    cos, sin = torch.cos(ang) / s, torch.sin(ang) / s
    theta = torch.stack([torch.stack([cos, -sin + torch.tan(sh) / s, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    ref = torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    assert torch.allclose(out, ref, atol=1e-5)
