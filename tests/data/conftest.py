"""Fixture builders for the data tests: tiny datasets in the layouts torchvision expects, messy folders."""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Every test gets its own decoded-image cache and data root: nothing touches ~/.cache."""
    monkeypatch.setenv("CNNKIT_CACHE", str(tmp_path / "decoded-cache"))
    monkeypatch.setenv("CNNKIT_DATA", str(tmp_path / "no-data-root"))


def md5(path: str | Path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


# ----------------------------------------------------------------------------- torchvision layouts
def idx_bytes(arr: np.ndarray) -> bytes:
    """IDX format (MNIST): magic 0x0000_08_<ndim>, big-endian dims, then uint8 data."""
    return struct.pack(">I", 0x0800 + arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.astype(np.uint8).tobytes()


def write_mnist(root: Path, cls_name: str = "MNIST", n_train: int = 30, n_test: int = 10, gz: bool = False,
                seed: int = 0) -> dict[str, np.ndarray]:  # fmt: skip
    """``root/<cls_name>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte`` (``.gz`` when ``gz``)."""
    rng = np.random.default_rng(seed)
    raw = root / cls_name / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = np.arange(n, dtype=np.uint8) % 10
        out[prefix] = (x, y)
        for kind, arr in (("images-idx3", x), ("labels-idx1", y)):
            data = idx_bytes(arr)
            name = f"{prefix}-{kind}-ubyte"
            if gz:
                (raw / (name + ".gz")).write_bytes(gzip.compress(data, mtime=0))
            else:
                (raw / name).write_bytes(data)
    return out


def write_cifar(root: Path, hundred: bool = False, n: int = 20, seed: int = 0) -> dict[str, np.ndarray]:
    """``root/cifar-10-batches-py`` (5 train batches, test_batch, batches.meta) or ``cifar-100-python``."""
    rng = np.random.default_rng(seed)
    folder = root / ("cifar-100-python" if hundred else "cifar-10-batches-py")
    folder.mkdir(parents=True, exist_ok=True)
    k = 100 if hundred else 10
    key = "fine_labels" if hundred else "labels"
    names = ["train", "test"] if hundred else [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    out = {}
    for name in names:
        x = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        y = [int(v) for v in rng.integers(0, k, n)]
        out[name] = (x, y)
        (folder / name).write_bytes(pickle.dumps({"data": x, key: y}))
    meta = {"fine_label_names": [f"c{i}" for i in range(k)]} if hundred else {
        "label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]}
    (folder / ("meta" if hundred else "batches.meta")).write_bytes(pickle.dumps(meta))
    return out


def write_svhn(root: Path, n: int = 15, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``root/{train,test}_32x32.mat`` with ``X`` (32 x 32 x 3 x N) and ``y`` (N x 1, digit 0 stored as 10)."""
    import scipy.io

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    out = {}
    for split in ("train", "test"):
        x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        y = (np.arange(n) % 10 + 1).astype(np.uint8)[:, None]  # 1..10
        scipy.io.savemat(str(root / f"{split}_32x32.mat"), {"X": x, "y": y})
        out[split] = (x, y)
    return out


def write_stl10(root: Path, n: int = 6, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``root/stl10_binary/{train,test}_{X,y}.bin`` (column-major 3 x 96 x 96 images, labels 1..10)."""
    rng = np.random.default_rng(seed)
    folder = root / "stl10_binary"
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split in ("train", "test"):
        x = rng.integers(0, 256, (n, 3, 96, 96), dtype=np.uint8)  # as displayed: N x C x H x W
        y = (np.arange(n) % 10 + 1).astype(np.uint8)
        x.transpose(0, 1, 3, 2).tofile(folder / f"{split}_X.bin")  # the file is column-major
        y.tofile(folder / f"{split}_y.bin")
        out[split] = (x, y)
    (folder / "unlabeled_X.bin").write_bytes(b"")
    return out


def patch_checksums(monkeypatch, cls, root: Path) -> None:
    """Point a torchvision class's per-file MD5 lists at the fixture files (it checks them on load)."""
    if hasattr(cls, "split_list"):  # SVHN
        sl = {k: [v[0], v[1], md5(root / v[1]) if (root / v[1]).exists() else v[2]] for k, v in cls.split_list.items()}
        monkeypatch.setattr(cls, "split_list", sl)
        return
    base = root / cls.base_folder
    monkeypatch.setattr(cls, "train_list", [[f, md5(base / f)] for f, _ in cls.train_list])
    monkeypatch.setattr(cls, "test_list", [[f, md5(base / f)] for f, _ in cls.test_list])
    if hasattr(cls, "meta"):
        monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": md5(base / cls.meta["filename"])})


# ----------------------------------------------------------------------------- image folders
def save_image(path: Path, arr_or_img, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = arr_or_img if isinstance(arr_or_img, Image.Image) else Image.fromarray(arr_or_img)
    img.save(path, **kw)
    return path


def jpeg_bytes(rng, size=(32, 32)) -> bytes:
    b = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(b, "JPEG")
    return b.getvalue()


def make_clean_folder(root: Path, classes=("cat", "dog"), per_class=12, size=(20, 24), seed=0) -> Path:
    """A class-per-subfolder dataset of small PNGs; class k is brighter than class k-1 (learnable)."""
    rng = np.random.default_rng(seed)
    for k, c in enumerate(classes):
        for i in range(per_class):
            base = 40 + 160 * k / max(1, len(classes) - 1)
            a = np.clip(rng.normal(base, 20, (*size, 3)), 0, 255).astype(np.uint8)
            save_image(root / c / f"{i:03d}.png", a)
    return root


# The bad files of the messy folder, as (relative path, what the skip reason mentions).
MESSY_BAD = [
    ("cat/a_notes.txt", "not an image file"),
    ("cat/b_empty.jpg", "empty file"),
    ("cat/c_truncated.jpg", "truncated"),
    ("dog/d_corrupt.png", ""),
    ("dog/e_text_named.jpg", "not an image"),
]


def make_messy_folder(root: Path, seed: int = 0) -> Path:
    """Every kind of mess a real folder has: bad files, mixed modes and sizes, EXIF, hidden files."""
    rng = np.random.default_rng(seed)
    make_clean_folder(root, per_class=10, seed=seed)
    cat, dog = root / "cat", root / "dog"
    # bad files
    (cat / "a_notes.txt").write_text("not an image")
    (cat / "b_empty.jpg").write_bytes(b"")
    (cat / "c_truncated.jpg").write_bytes(jpeg_bytes(rng, (64, 64))[:400])
    (dog / "d_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(rng.integers(0, 256, 200, dtype=np.uint8)))
    (dog / "e_text_named.jpg").write_text("hello, I am not a JPEG")
    # hidden and system files: ignored silently
    (dog / ".hidden.jpg").write_bytes(b"garbage")
    (dog / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (root / ".git").mkdir()
    (root / ".git" / "x.png").write_bytes(b"garbage")
    # mixed modes and sizes (all readable)
    save_image(dog / "m_gray.png", rng.integers(0, 256, (30, 30), dtype=np.uint8))
    save_image(dog / "m_rgba.png", Image.new("RGBA", (16, 12), (200, 10, 10, 128)))
    save_image(dog / "m_palette.gif", Image.new("P", (10, 10), 3))
    save_image(dog / "m_cmyk.jpg", Image.new("CMYK", (18, 18), (0, 255, 0, 0)))
    save_image(dog / "m_16bit.png", (rng.random((14, 14)) * 65535).astype(np.uint16))
    save_image(dog / "m_la.png", Image.new("LA", (12, 12), (90, 255)))
    save_image(dog / "m_big.jpg", rng.integers(0, 256, (120, 90, 3), dtype=np.uint8))
    save_image(dog / "nested" / "m_nested.png", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    save_image(dog / "m_exif.jpg", rng.integers(0, 256, (10, 20, 3), dtype=np.uint8), exif=exif)
    return root


MESSY_GOOD_DOG = 10 + 9  # 10 clean dogs + 9 readable odd ones


@pytest.fixture
def fx():
    """These builders, for tests (``--import-mode=importlib`` cannot import conftest by name)."""
    import sys

    return sys.modules[__name__]
