"""Bad (and a few good) input files for the fuzz suites of the explain, transfer and classic commands.

Each function returns a ``setup(folder)`` for :class:`cnnkit_fuzz.Case`: it writes one file (or
damages one file of the run copy at ``folder/run``). Everything is tiny and made in milliseconds;
the "decompression bomb" is a PNG *header* declaring a huge size, not a huge file.
"""

from __future__ import annotations

import io
import json
import os
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

Setup = Callable[[Path], None]


def both(*setups: Setup) -> Setup:
    """Run several setups in order."""

    def setup(folder: Path) -> None:
        for s in setups:
            s(folder)

    return setup


def raw(rel: str, data: bytes | str) -> Setup:
    """Write ``data`` to ``rel`` (parents made)."""

    def setup(folder: Path) -> None:
        p = folder / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data if isinstance(data, bytes) else data.encode())

    return setup


def png(rel: str, h: int = 20, w: int = 20) -> Setup:
    """A small, valid RGB PNG of random pixels."""

    def setup(folder: Path) -> None:
        p = folder / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(len(rel))
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(p)

    return setup


def zero(rel: str) -> Setup:
    return raw(rel, b"")


def random_bytes(rel: str, n: int = 400) -> Setup:
    return raw(rel, np.random.default_rng(n).integers(0, 256, n, dtype=np.uint8).tobytes())


def truncated_png(rel: str) -> Setup:
    """A PNG cut in half: the header reads, the pixels do not."""

    def setup(folder: Path) -> None:
        buf = io.BytesIO()
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, "PNG")
        data = buf.getvalue()
        (folder / rel).write_bytes(data[: len(data) // 2])

    return setup


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def bomb_png(rel: str, side: int = 100_000) -> Setup:
    """A ~60-byte PNG whose header declares ``side x side`` grey pixels.

    ``side=100_000`` (10**10 pixels) is beyond twice ``PIL.Image.MAX_IMAGE_PIXELS``: PIL refuses it.
    ``side=10_000`` (10**8) is just above the limit itself, where PIL only *warns* and then decodes.
    """
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\0" * 16)) + _chunk(b"IEND", b"")
    return raw(rel, data)


def folder(rel: str) -> Setup:
    """An (empty) folder where a file is expected."""

    def setup(folder_: Path) -> None:
        (folder_ / rel).mkdir(parents=True, exist_ok=True)

    return setup


# The damaged images every command that reads an image file must refuse, by case-id suffix.
BAD_IMAGES: dict[str, Callable[[str], Setup]] = {
    "zero-byte-image": zero,
    "random-bytes-image": random_bytes,
    "truncated-image": truncated_png,
    "decompression-bomb": bomb_png,
    # Between 1x and 2x PIL's limit PIL only warns, then decodes 10**8 pixels: refused as well.
    "bomb-just-over-limit": lambda rel: bomb_png(rel, 10_000),
    "folder-as-image": folder,
}


def bad_image_cases(prefix: str, argv: list[str], image: str = "img.png", **expect: str) -> list:
    """``PREFIX-<kind>`` cases: ``argv`` with its ``image`` missing, then replaced by each of :data:`BAD_IMAGES`.

    ``expect``: what the message must name, by kind with underscores (``missing_image``,
    ``truncated_image``, ...); an empty or random-bytes file must say so ("empty file", "not an image").
    """
    from cnnkit_fuzz import Case

    texts = {"zero-byte-image": "empty file", "random-bytes-image": "not an image"}
    texts.update({k.replace("_", "-"): v for k, v in expect.items()})
    missing = [a.replace(image, "nope.png") for a in argv]
    return [Case(f"{prefix}-missing-image", missing, expect=texts.pop("missing-image"))] + [
        Case(f"{prefix}-{kind}", argv, setup=BAD_IMAGES[kind](image), expect=texts[kind]) for kind in BAD_IMAGES
    ]


def in_run(rel: str, data: bytes | str | None) -> Setup:
    """Damage the run copy: overwrite ``run/rel`` with ``data``, or delete it (``None``)."""

    def setup(folder_: Path) -> None:
        p = folder_ / "run" / rel
        if data is None:
            p.unlink()
        else:
            p.write_bytes(data if isinstance(data, bytes) else data.encode())

    return setup


def edit_run_config(old: str, new: str) -> Setup:
    """Replace text in the run copy's config.yaml (a value that is valid YAML but a bad option)."""

    def setup(folder_: Path) -> None:
        p = folder_ / "run" / "config.yaml"
        p.write_text(p.read_text().replace(old, new))

    return setup


# ----------------------------------------------------------------------------- feature files
def _arrays(n: int = 12) -> dict[str, np.ndarray]:
    """The arrays of a small, valid ``cnnkit features`` file (two classes, train and test rows)."""
    rng = np.random.default_rng(0)
    return {
        "features": rng.random((n, 4)).astype(np.float32),
        "labels": np.arange(n) % 2,
        "split": np.array(["train"] * (n - 4) + ["test"] * 4),
        "ids": np.array([str(i) for i in range(n)]),
        "classes": np.array(["a", "b"]),
        "meta": np.array(json.dumps({"source": "test"})),
    }


def npz(rel: str, **override: np.ndarray | None) -> Setup:
    """A feature file with some arrays replaced (``None`` drops one)."""

    def setup(folder_: Path) -> None:
        d = _arrays()
        d.update(override)
        np.savez(folder_ / rel, **{k: v for k, v in d.items() if v is not None})

    return setup


def npz_member(rel: str, key: str, data: bytes) -> Setup:
    """A feature file whose member ``key`` is ``data`` instead of an ``.npy`` array."""

    def setup(folder_: Path) -> None:
        with zipfile.ZipFile(folder_ / rel, "w") as z:
            for k, v in _arrays().items():
                if k == key:
                    z.writestr(f"{k}.npy", data)
                    continue
                buf = io.BytesIO()
                np.save(buf, v)
                z.writestr(f"{k}.npy", buf.getvalue())

    return setup


class Payload:
    """Unpickling this makes a folder ``UNPICKLED`` beside the file: proof the file was unpickled."""

    def __init__(self, where: str) -> None:
        self.where = where

    def __reduce__(self) -> tuple:
        return (os.mkdir, (self.where,))


def npz_pickle(rel: str) -> Setup:
    """A feature file whose ``ids`` are an object array carrying :class:`Payload` (a pickle)."""

    def setup(folder_: Path) -> None:
        ids = np.empty(12, dtype=object)
        ids[:] = [Payload(str(folder_ / "UNPICKLED"))] * 12
        d = _arrays()
        d["ids"] = ids
        np.savez(folder_ / rel, **d)

    return setup


def npy_as_npz(rel: str) -> Setup:
    """A single ``.npy`` array saved under an ``.npz`` name."""

    def setup(folder_: Path) -> None:
        buf = io.BytesIO()
        np.save(buf, np.zeros((3, 4), np.float32))
        (folder_ / rel).write_bytes(buf.getvalue())

    return setup


def truncated_npz(rel: str) -> Setup:
    """A valid feature file cut in half (the zip directory at its end is gone)."""

    def setup(folder_: Path) -> None:
        buf = io.BytesIO()
        np.savez(buf, **_arrays())
        data = buf.getvalue()
        (folder_ / rel).write_bytes(data[: len(data) // 2])

    return setup
