"""Standard datasets through torchvision's classes: local files, downloads, checksums, clear errors."""

from __future__ import annotations

import tarfile

import numpy as np
import pytest
import torch
import torchvision.datasets as tvd

from cnnkit.data import list_datasets, load_dataset
from cnnkit.errors import DataError


def test_registry_lists_every_standard_dataset_with_shapes_sizes_and_files(tmp_path):
    from cnnkit.data.registry import dataset_files

    entries = {e.name: e for e in list_datasets()}
    for name in ("digits", "mnist", "fashion-mnist", "kmnist", "cifar10", "cifar100", "svhn", "stl10"):
        assert name in entries, name
    assert entries["cifar100"].num_classes == 100 and entries["stl10"].image_shape == (3, 96, 96)
    assert entries["mnist"].split_sizes == {"train": 60000, "test": 10000}
    assert entries["mnist"].hflip_ok is False and "flip" not in entries["mnist"].default_augment
    where, status = dataset_files(entries["cifar10"], str(tmp_path))
    assert where == str(tmp_path / "cifar-10-batches-py") and status == "missing"
    assert dataset_files(entries["digits"], str(tmp_path))[0] == "built in"


@pytest.mark.parametrize("name,cls_name,gz", [("mnist", "MNIST", False), ("fashion-mnist", "FashionMNIST", True),
                                              ("kmnist", "KMNIST", False)])  # fmt: skip
def test_mnist_family_from_idx_files(tmp_path, fx, monkeypatch, name, cls_name, gz):
    written = fx.write_mnist(tmp_path, cls_name, gz=gz)
    if gz:  # archives present but not unpacked: verified against the class's MD5s, then unpacked
        cls = getattr(tvd, cls_name)
        raw = tmp_path / cls_name / "raw"
        monkeypatch.setattr(cls, "resources", [(f, fx.md5(raw / f)) for f, _ in cls.resources])
    ds = load_dataset(name, root=str(tmp_path), val_split=0.2)
    assert ds.image_shape == (1, 28, 28) and ds.train.images.dtype == torch.uint8
    assert len(ds.test) == 10 and len(ds.train) + len(ds.val) == 30
    x, y = written["t10k"]
    assert torch.equal(ds.test.images[:, 0], torch.from_numpy(x)) and ds.test.labels.tolist() == y.tolist()
    assert ds.test.ids[3] == f"{name}/test/3"
    assert ds.classes == list(getattr(tvd, cls_name).classes)


@pytest.mark.parametrize("hundred", [False, True])
def test_cifar_from_pickled_batches(tmp_path, fx, monkeypatch, hundred):
    written = fx.write_cifar(tmp_path, hundred=hundred)
    cls = tvd.CIFAR100 if hundred else tvd.CIFAR10
    fx.patch_checksums(monkeypatch, cls, tmp_path)
    ds = load_dataset("cifar100" if hundred else "cifar10", root=str(tmp_path), input_size=32)
    assert ds.image_shape == (3, 32, 32)
    x, y = written["test" if hundred else "test_batch"]
    assert torch.equal(ds.test.images, torch.from_numpy(x.reshape(-1, 3, 32, 32)))
    assert ds.test.labels.tolist() == y
    assert ds.classes[3] == ("c3" if hundred else "cat")
    assert len(ds.train) + len(ds.val) == (20 if hundred else 100)


def test_svhn_from_mat_files_maps_label_10_to_digit_0(tmp_path, fx, monkeypatch):
    written = fx.write_svhn(tmp_path)
    fx.patch_checksums(monkeypatch, tvd.SVHN, tmp_path)
    ds = load_dataset("svhn", root=str(tmp_path))
    x, y = written["test"]
    assert torch.equal(ds.test.images, torch.from_numpy(x.transpose(3, 2, 0, 1).copy()))
    assert ds.test.labels.tolist() == [int(v) % 10 for v in y[:, 0]]
    assert ds.classes == [str(i) for i in range(10)]


def test_stl10_from_binary_files_resized_for_the_model(tmp_path, fx, monkeypatch):
    written = fx.write_stl10(tmp_path)
    fx.patch_checksums(monkeypatch, tvd.STL10, tmp_path)
    ds = load_dataset("stl10", root=str(tmp_path), val_split=0.0, input_size=32)
    assert ds.image_shape == (3, 32, 32) and ds.classes[0] == "airplane"
    native = load_dataset("stl10", root=str(tmp_path), val_split=0.0)
    x, y = written["test"]
    assert torch.equal(native.test.images, torch.from_numpy(x)) and native.test.labels.tolist() == (y - 1).tolist()


def test_missing_files_without_download_name_files_location_and_url(tmp_path):
    with pytest.raises(DataError) as e:
        load_dataset("cifar10", root=str(tmp_path))
    msg = str(e.value)
    assert str(tmp_path) in msg and "data_batch_1" in msg and "batches.meta" in msg
    assert tvd.CIFAR10.url in msg and "--download" in msg


def test_damaged_file_is_named_with_expected_and_actual_md5(tmp_path, fx, monkeypatch):
    fx.write_cifar(tmp_path)
    fx.patch_checksums(monkeypatch, tvd.CIFAR10, tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_2").write_bytes(b"damaged")
    with pytest.raises(DataError) as e:
        load_dataset("cifar10", root=str(tmp_path))
    assert "data_batch_2" in e.value.message and "expected md5" in e.value.message


# ----------------------------------------------------------------------------- downloads
def _cifar_archive(tmp_path, fx, monkeypatch, served):
    src = tmp_path / "src"
    written = fx.write_cifar(src)
    fx.patch_checksums(monkeypatch, tvd.CIFAR10, src)
    archive = served / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return archive, written


def test_download_fetches_verifies_and_unpacks(tmp_path, fx, monkeypatch, http_dir):
    served, url = http_dir
    archive, written = _cifar_archive(tmp_path, fx, monkeypatch, served)
    monkeypatch.setattr(tvd.CIFAR10, "url", url + archive.name)
    monkeypatch.setattr(tvd.CIFAR10, "tgz_md5", fx.md5(archive))
    root = tmp_path / "root"
    ds = load_dataset("cifar10", root=str(root), download=True)
    x, _ = written["test_batch"]
    assert torch.equal(ds.test.images, torch.from_numpy(x.reshape(-1, 3, 32, 32)))
    assert (root / "cifar-10-batches-py" / "data_batch_5").is_file()
    # Second time: no download needed (the server is not asked again).
    monkeypatch.setattr(tvd.CIFAR10, "url", "http://127.0.0.1:1/nothing-here.tar.gz")
    assert len(load_dataset("cifar10", root=str(root), download=True).test) == 20


def test_download_with_wrong_checksum_is_refused(tmp_path, fx, monkeypatch, http_dir):
    served, url = http_dir
    archive, _ = _cifar_archive(tmp_path, fx, monkeypatch, served)
    monkeypatch.setattr(tvd.CIFAR10, "url", url + archive.name)
    monkeypatch.setattr(tvd.CIFAR10, "tgz_md5", "0" * 32)
    root = tmp_path / "root"
    with pytest.raises(DataError) as e:
        load_dataset("cifar10", root=str(root), download=True)
    msg = e.value.message
    assert "cifar-10-python.tar.gz" in msg and "expected md5 " + "0" * 32 in msg and fx.md5(archive) in msg
    assert not list(root.rglob("*.tar.gz")) and not (root / "cifar-10-batches-py").exists()  # nothing kept


def test_download_tries_the_next_mirror(tmp_path, fx, monkeypatch, http_dir):
    served, url = http_dir
    fx.write_mnist(served, "x", gz=True)
    raw = served / "x" / "raw"
    for f in raw.iterdir():
        f.rename(served / f.name)
    monkeypatch.setattr(tvd.MNIST, "mirrors", ["http://127.0.0.1:1/", url])
    monkeypatch.setattr(tvd.MNIST, "resources", [(f, fx.md5(served / f)) for f, _ in tvd.MNIST.resources])
    ds = load_dataset("mnist", root=str(tmp_path / "root"), download=True)
    assert len(ds.test) == 10 and ds.image_shape == (1, 28, 28)


def test_offline_download_explains_what_to_fetch_by_hand(tmp_path, monkeypatch):
    monkeypatch.setattr(tvd.SVHN, "split_list", {k: ["http://127.0.0.1:1/" + v[1], v[1], v[2]]
                                                 for k, v in tvd.SVHN.split_list.items()})  # fmt: skip
    with pytest.raises(DataError) as e:
        load_dataset("svhn", root=str(tmp_path), download=True)
    assert "could not download train_32x32.mat" in e.value.message
    assert "http://127.0.0.1:1/train_32x32.mat" in str(e.value) and str(tmp_path) in str(e.value)


def test_conversion_has_no_per_sample_python(tmp_path, fx, monkeypatch):
    """The arrays come over in one reshape: a big fake CIFAR batch converts quickly and exactly."""
    import time

    from cnnkit.data.torchvision_sets import _to_nchw

    x = np.random.default_rng(0).integers(0, 256, (20000, 32, 32, 3), dtype=np.uint8)
    t = time.perf_counter()
    out = _to_nchw(x.transpose(0, 3, 1, 2))
    assert time.perf_counter() - t < 2.0
    assert out.shape == (20000, 3, 32, 32) and out.is_contiguous() and torch.equal(out[5].permute(1, 2, 0),
                                                                                   torch.from_numpy(x[5]))  # fmt: skip
