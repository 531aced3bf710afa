"""The standard datasets, read through torchvision's dataset classes.

``mnist``, ``fashion-mnist``, ``kmnist``, ``cifar10``, ``cifar100``, ``svhn`` and ``stl10`` live under
the data root (``--data-root``, ``$CNNKIT_DATA`` or ``~/.cache/cnnkit/data``) in the layout torchvision
uses (``MNIST/raw/...``, ``cifar-10-batches-py/...``, ``train_32x32.mat``, ``stl10_binary/...``), so
files torchvision already downloaded are found as they are.

torchvision holds each set as one array (``.data``); it becomes a uint8 ``N x C x H x W`` tensor with
one reshape, no per-image Python. ``download=True`` fetches missing files from the URLs the
torchvision class names (read at call time, so mirrors can be swapped), checks each file's MD5 while
it streams in, refuses a mismatch, and unpacks archives. Without the files and without a network
the error lists what is expected, where, and from which URL.
"""

from __future__ import annotations

import hashlib
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from ..io import TMP_PREFIX
from .base import ImageData
from .registry import RawDataset, register_dataset


@dataclass(frozen=True)
class Remote:
    """One file to fetch: its name and MD5, mirror URLs, where it goes, what it provides once unpacked."""

    filename: str
    md5: str
    urls: tuple[str, ...]
    folder: Path
    provides: tuple[Path, ...]
    archive: bool  # unpack into ``folder`` after the download

    @property
    def path(self) -> Path:
        return self.folder / self.filename


def md5sum(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while b := fh.read(chunk):
            h.update(b)
    return h.hexdigest()


# ----------------------------------------------------------------------------- per-family layouts
def _mnist_remotes(cls: type, root: Path) -> list[Remote]:
    raw = root / cls.__name__ / "raw"
    return [
        Remote(name, md5, tuple(m + name for m in cls.mirrors), raw, (raw / name.removesuffix(".gz"),), True)
        for name, md5 in cls.resources
    ]


def _tar_remotes(cls: type, root: Path) -> list[Remote]:  # CIFAR-10/100, STL-10: one tar.gz
    names = [f for f, _ in cls.train_list + cls.test_list]
    if hasattr(cls, "meta"):
        names.append(cls.meta["filename"])
    provides = tuple(root / cls.base_folder / n for n in names)
    return [Remote(cls.filename, cls.tgz_md5, (cls.url,), root, provides, True)]


def _svhn_remotes(cls: type, root: Path) -> list[Remote]:
    out = []
    for split in ("train", "test"):
        url, name, md5 = cls.split_list[split]
        out.append(Remote(name, md5, (url,), root, (root / name,), False))
    return out


def _known_md5(cls: type, root: Path) -> dict[Path, str]:
    """MD5s torchvision checks for unpacked files (CIFAR, STL-10, SVHN), to name a damaged one."""
    out: dict[Path, str] = {}
    if hasattr(cls, "base_folder"):
        for f, m in cls.train_list + cls.test_list:
            out[root / cls.base_folder / f] = m
        if hasattr(cls, "meta"):
            out[root / cls.base_folder / cls.meta["filename"]] = cls.meta["md5"]
    if hasattr(cls, "split_list"):
        for _url, name, m in cls.split_list.values():
            out[root / name] = m
    return out


# ----------------------------------------------------------------------------- fetching
def _fetch(r: Remote, log: Callable[[str], None]) -> None:
    """Download ``r`` (trying each mirror), verifying its MD5 before it takes its final name."""
    r.folder.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    mismatch: DataError | None = None
    for url in r.urls:
        tmp = r.folder / f"{TMP_PREFIX}{r.filename}"
        log(f"downloading {url}")
        try:
            h = hashlib.md5(usedforsecurity=False)
            req = urllib.request.Request(url, headers={"User-Agent": "cnnkit"})
            with urllib.request.urlopen(req, timeout=60) as resp, open(tmp, "wb") as fh:
                while b := resp.read(1 << 20):
                    h.update(b)
                    fh.write(b)
        except (urllib.error.URLError, OSError, ValueError) as e:
            tmp.unlink(missing_ok=True)
            errors.append(f"{url}: {getattr(e, 'reason', e)}")
            continue
        actual = h.hexdigest()
        if actual != r.md5:
            tmp.unlink(missing_ok=True)
            mismatch = DataError(
                f"checksum mismatch for {r.filename} downloaded from {url}: expected md5 {r.md5}, got {actual}",
                hint="the download is damaged or the server's file changed; it was not used. Try again later, "
                f"or download it yourself, check its md5 and put it at {r.path}",
            )
            errors.append(f"{url}: md5 {actual}, expected {r.md5}")
            continue
        os.replace(tmp, r.path)
        return
    if mismatch is not None:
        raise mismatch
    raise DataError(
        f"could not download {r.filename}: " + "; ".join(errors),
        hint=f"check the network connection, or download {r.urls[0]} yourself and put it at {r.path}",
    )


def _unpack(r: Remote) -> None:
    from torchvision.datasets.utils import extract_archive

    try:
        extract_archive(str(r.path), str(r.folder))
    except Exception as e:  # tarfile/gzip/zip errors
        raise DataError(f"cannot unpack {r.path}: {e}", hint="delete it and download again (--download)") from None


def _missing_error(name: str, root: Path, remotes: list[Remote], missing: list[Path]) -> DataError:
    # One line each for the message and the hint (the CLI prints exactly these two lines).
    where = "; ".join(f"{r.urls[0]} -> {r.path}" + (" (then unpacked there)" if r.archive else "") for r in remotes)
    return DataError(
        f"dataset {name!r} was not found under {root}; missing: " + ", ".join(str(p.relative_to(root)) for p in missing),
        hint="add --download to fetch the files (checksums are verified), or download them yourself and put them "
        f"where the arrows point: {where} (--data-root or $CNNKIT_DATA picks another data root)",
    )


def ensure_files(name: str, remotes: list[Remote], root: Path, download: bool,
                 log: Callable[[str], None] | None = None) -> None:  # fmt: skip
    """Make sure every file the remotes provide exists: unpack archives present, else download (if allowed)."""
    log = log or (lambda s: print(s, file=sys.stderr))
    for r in remotes:
        if all(p.is_file() for p in r.provides):
            continue
        if r.archive and r.path.is_file():  # downloaded before (or by hand) but not unpacked
            actual = md5sum(r.path)
            if actual == r.md5:
                _unpack(r)
                continue
            if not download:
                raise DataError(
                    f"{r.path} does not match its checksum: expected md5 {r.md5}, got {actual}",
                    hint="delete it and run again with --download",
                )
        if not download:
            missing = [p for x in remotes for p in x.provides if not p.is_file()]
            raise _missing_error(name, root, remotes, missing)
        _fetch(r, log)
        if r.archive:
            _unpack(r)
        missing = [p for p in r.provides if not p.is_file()]
        if missing:
            raise DataError(f"{r.filename} did not contain {', '.join(map(str, missing))}",
                            hint="the archive's layout is not what torchvision expects")  # fmt: skip


# ----------------------------------------------------------------------------- the sources
@dataclass(frozen=True)
class TorchvisionSet:
    name: str
    cls_name: str
    remotes: Callable[[type, Path], list[Remote]]
    read: Callable[[type, str, str], tuple[Any, Any, list[str] | None]]  # (cls, root, split) -> NCHW data, labels, classes
    splits: tuple[str, ...] = ("train", "test")

    @property
    def cls(self) -> type:
        import torchvision.datasets as tvd

        return getattr(tvd, self.cls_name)

    def files(self, root: str) -> list[str]:
        return [str(p) for r in self.remotes(self.cls, Path(root)) for p in r.provides]

    def load(self, root: str | None, download: bool) -> RawDataset:
        from .registry import default_data_root

        cls = self.cls
        base = Path(root or default_data_root()).expanduser()
        remotes = self.remotes(cls, base)
        ensure_files(self.name, remotes, base, download)
        splits: dict[str, ImageData] = {}
        classes: list[str] | None = None
        for split in self.splits:
            try:
                data, labels, names = self.read(cls, str(base), split)
            except Exception as e:  # torchvision's readers fail with many types (even AssertionError) on damaged files
                raise self._diagnose(cls, base, e) from None
            x = _to_nchw(data)
            y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
            splits[split] = ImageData(x, y, [f"{self.name}/{split}/{i}" for i in range(len(y))])
            classes = classes or names
        n = int(max(int(s.labels.max()) for s in splits.values() if len(s)) + 1)
        classes = list(classes) if classes else [str(i) for i in range(n)]
        location = str(remotes[0].provides[0].parent)
        return RawDataset(classes, splits, {"source": f"torchvision.datasets.{self.cls_name}", "files": location})

    def _diagnose(self, cls: type, root: Path, err: Exception) -> DataError:
        for path, md5 in _known_md5(cls, root).items():
            if path.is_file():
                actual = md5sum(path)
                if actual != md5:
                    return DataError(
                        f"{path} does not match its checksum: expected md5 {md5}, got {actual}",
                        hint="the file is damaged or from another version; delete it and run again with --download",
                    )
        first = next((ln.strip() for ln in str(err).splitlines() if ln.strip()), "")
        why = f"{type(err).__name__}: {first}" if first else f"{type(err).__name__} (the files are damaged or incomplete)"
        return DataError(f"cannot read dataset {self.name!r} from {root}: {why}"[:400],
                         hint="delete its files and run again with --download")  # fmt: skip


def _to_nchw(data: Any) -> torch.Tensor:
    """torchvision's ``.data`` (N x H x W grey, or N x C x H x W) as a contiguous uint8 tensor N x C x H x W."""
    x = data if isinstance(data, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(data))
    x = x.to(torch.uint8)
    return (x.unsqueeze(1) if x.ndim == 3 else x).contiguous()


def _read_mnist(cls: type, root: str, split: str):
    ds = cls(root, train=split == "train", download=False)
    return ds.data, ds.targets, list(cls.classes)


def _read_cifar(cls: type, root: str, split: str):
    ds = cls(root, train=split == "train", download=False)
    return ds.data.transpose(0, 3, 1, 2), ds.targets, list(ds.classes)  # stored N x H x W x C


def _read_svhn(cls: type, root: str, split: str):
    ds = cls(root, split=split, download=False)
    return ds.data, ds.labels, None


STL10_CLASSES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]


def _read_stl10(cls: type, root: str, split: str):
    ds = cls(root, split=split, download=False)
    return ds.data, ds.labels.astype(np.int64), list(getattr(ds, "classes", None) or STL10_CLASSES)


def _register(tv: TorchvisionSet, description: str, num_classes: int, shape: tuple[int, int, int],
              sizes: dict[str, int], augment: str, hflip_ok: bool) -> None:  # fmt: skip
    @register_dataset(tv.name, description, num_classes, shape, sizes, augment, hflip_ok, files=tv.files)
    def load(root: str | None = None, download: bool = False) -> RawDataset:
        return tv.load(root, download)

    load.__doc__ = f"{description} (torchvision.datasets.{tv.cls_name})"


DIGIT_AUG = "translate=2,rotate=10,scale=0.1"
_SETS = [
    (TorchvisionSet("mnist", "MNIST", _mnist_remotes, _read_mnist),
     "MNIST handwritten digits (LeCun et al. 1998), 28x28 grey", 10, (1, 28, 28),
     {"train": 60000, "test": 10000}, DIGIT_AUG, False),
    (TorchvisionSet("fashion-mnist", "FashionMNIST", _mnist_remotes, _read_mnist),
     "Fashion-MNIST: Zalando clothing photos, 28x28 grey", 10, (1, 28, 28),
     {"train": 60000, "test": 10000}, "translate=2,flip", True),
    (TorchvisionSet("kmnist", "KMNIST", _mnist_remotes, _read_mnist),
     "Kuzushiji-MNIST: cursive Japanese characters, 28x28 grey", 10, (1, 28, 28),
     {"train": 60000, "test": 10000}, DIGIT_AUG, False),
    (TorchvisionSet("cifar10", "CIFAR10", _tar_remotes, _read_cifar),
     "CIFAR-10: 10 classes of tiny colour photos (Krizhevsky 2009), 32x32", 10, (3, 32, 32),
     {"train": 50000, "test": 10000}, "translate=4,flip", True),
    (TorchvisionSet("cifar100", "CIFAR100", _tar_remotes, _read_cifar),
     "CIFAR-100: 100 fine classes of tiny colour photos, 32x32", 100, (3, 32, 32),
     {"train": 50000, "test": 10000}, "translate=4,flip", True),
    (TorchvisionSet("svhn", "SVHN", _svhn_remotes, _read_svhn),
     "SVHN: house numbers from Street View, 32x32 colour (digit 0 is label 0)", 10, (3, 32, 32),
     {"train": 73257, "test": 26032}, "translate=2,rotate=5", False),
    (TorchvisionSet("stl10", "STL10", _tar_remotes, _read_stl10),
     "STL-10: 10 classes of 96x96 colour photos (labelled part)", 10, (3, 96, 96),
     {"train": 5000, "test": 8000}, "translate=12,flip", True),
]  # fmt: skip
for _args in _SETS:
    _register(*_args)
