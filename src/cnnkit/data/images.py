"""Reading image files: one decoder for training, evaluation and prediction.

Every file goes through :func:`decode_array`: EXIF orientation applied, 16-bit and float images
scaled to 0..255, any mode (1, L, LA, P, RGB, RGBA, CMYK, I;16, ...) converted to grey (``L``) or
``RGB``, then resized (PIL's antialiased bilinear) to the model's input size. Many files are decoded
in parallel threads (:func:`decode_files`): PIL releases the GIL while it decodes and resizes.

A file that cannot be used raises :class:`BadImage` with a short reason ("truncated image", "not an
image", ...); callers decide whether that skips the file or stops with an error.
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

IMAGE_EXTENSIONS = {
    ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm", ".pnm", ".tga",
}  # fmt: skip
# Modes holding one value per pixel: decoded as grey; everything else as RGB.
GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_WIDE_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}  # more than 8 bits per pixel
# Files an operating system leaves in folders; never images, never worth a warning.
SYSTEM_FILES = {"thumbs.db", "desktop.ini", "__macosx"}


class BadImage(Exception):
    """A file that cannot be decoded; ``reason`` says why in a few words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def is_image_name(path: str | Path) -> bool:
    return os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS


def _reason(e: Exception, path: str) -> str:
    from PIL import Image, UnidentifiedImageError

    if isinstance(e, BadImage):
        return e.reason
    if isinstance(e, FileNotFoundError):
        return "file not found"
    if isinstance(e, UnidentifiedImageError):
        return "not an image (PIL cannot identify the format)"
    if isinstance(e, Image.DecompressionBombError):
        return f"too large to decode safely ({e})"
    msg = str(e).replace(repr(path), "").replace(str(path), "").strip(" :") or type(e).__name__
    if "truncated" in msg.lower():
        return f"truncated image ({msg})"
    return f"corrupt image ({type(e).__name__}: {msg})"


def _open(path: str):
    from PIL import Image

    if os.path.getsize(path) == 0:
        raise BadImage("empty file (0 bytes)")
    with _quiet_pil():  # PIL's DecompressionBombWarning would be a stray line: the size is refused below
        im = Image.open(path)
    # A header may declare a huge image in a few bytes (a decompression bomb); PIL only warns between
    # its limit and twice its limit, and decoding would allocate gigabytes. Refuse it before decoding.
    w, h = im.size
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and w * h > limit:
        im.close()
        raise BadImage(f"too large to decode safely ({w}x{h} pixels, more than PIL's limit of {limit:,})")
    return im


def decode_array(path: str | Path, channels: int | None, size: tuple[int, int] | None) -> tuple[np.ndarray, bool]:
    """Decode one file to a uint8 ``H x W x C`` array; returns it and whether the source was grey.

    ``channels`` 1 or 3 (``None``: 1 for grey sources, 3 otherwise); ``size`` ``(H, W)`` or ``None``
    (native size). Raises :class:`BadImage` with the reason when the file cannot be used.
    """
    from PIL import ImageOps

    p = str(path)
    try:
        with _open(p) as im:
            gray = im.mode in GRAY_MODES
            im.load()  # decodes everything now: truncated data raises here
            if im.getexif().get(0x0112, 1) != 1:  # EXIF orientation tag
                ImageOps.exif_transpose(im, in_place=True)
            arr = _pil_to_array(im, channels, size)
    except BadImage:
        raise
    except Exception as e:  # PIL plugins raise many types for damaged files
        raise BadImage(_reason(e, p)) from None
    return arr, gray


def _pil_to_array(im, channels: int | None, size: tuple[int, int] | None) -> np.ndarray:
    """A decoded PIL image as uint8 ``H x W x C``: the one conversion every image goes through."""
    from PIL import Image

    gray = im.mode in GRAY_MODES
    if im.mode in _WIDE_MODES:  # 16-bit/float: stretch to 0..255 (as predict does)
        a = np.asarray(im, dtype=np.float64)
        im = Image.fromarray(np.clip(a / max(a.max(), 1) * 255, 0, 255).astype(np.uint8))
    c = channels or (1 if gray else 3)
    mode = "L" if c == 1 else "RGB"
    if im.mode != mode:
        im = im.convert(mode)
    if size is not None and im.size != (size[1], size[0]):
        im = im.resize((size[1], size[0]), Image.BILINEAR)
    arr = np.asarray(im, dtype=np.uint8)
    return arr[:, :, None] if arr.ndim == 2 else arr


def read_image(path: str | Path, channels: int, size: tuple[int, int] | None) -> torch.Tensor:
    """One file as uint8 ``C x H x W`` (``size=None``: its own); a :class:`~cnnkit.errors.DataError` names the file."""
    from ..errors import DataError

    if not Path(path).exists():
        raise DataError(f"image {str(path)!r} does not exist (file not found)", hint="check the path and its spelling")
    if Path(path).is_dir():
        raise DataError(f"{str(path)!r} is a folder, not an image file", hint="pass an image file")
    try:
        arr, _ = decode_array(path, channels, size)
    except BadImage as e:
        raise DataError(f"cannot read image {str(path)!r}: {e.reason}", hint="is it a valid image file?") from None
    return torch.from_numpy(arr.transpose(2, 0, 1).copy())


def _array_to_pil(a: np.ndarray, what: str):
    """An ``H x W`` or ``H x W x C`` array (uint8 0..255, or float 0..1 / 0..255) as a PIL image."""
    from PIL import Image

    from ..errors import DataError

    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (3, 4))) or min(a.shape[:2]) < 1:
        raise DataError(f"{what} has shape {tuple(a.shape)}, which is not an image",
                        hint="pass H x W (grey) or H x W x 3 (RGB) for arrays, C x H x W for tensors")  # fmt: skip
    if a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    elif a.dtype != np.uint8:
        if not np.issubdtype(a.dtype, np.number) or np.iscomplexobj(a):
            raise DataError(f"{what} has dtype {a.dtype}, not pixel values", hint="pass uint8 or float pixels")
        f = a.astype(np.float64)
        if not np.isfinite(f).all():
            raise DataError(f"{what} holds NaN or infinite values", hint="pass finite pixel values")
        if f.min() < 0:
            raise DataError(f"{what} has negative values: it looks normalised already",
                            hint="pass raw pixels (0..1 floats or 0..255); cnnkit normalises them itself")  # fmt: skip
        # Floats up to 1 are 0..1 images (torchvision's convention); anything larger is 0..255.
        scale = 255.0 if np.issubdtype(a.dtype, np.floating) and f.max() <= 1.0 else 1.0
        a = np.clip(np.rint(f * scale), 0, 255).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(a))


def to_image_tensor(image, channels: int, size: tuple[int, int]) -> torch.Tensor:
    """Any image a user holds as uint8 ``C x H x W`` at the model's size, by the same path as files.

    ``image``: a file path, a PIL image, a NumPy array (``H x W`` or ``H x W x C``) or a tensor
    (``C x H x W`` or ``H x W``). Floats are read as 0..1 when their maximum is at most 1, else as
    0..255. Raises :class:`~cnnkit.errors.DataError` for anything else.
    """
    from PIL import Image, ImageOps

    from ..errors import DataError

    if isinstance(image, (str, os.PathLike)):
        return read_image(image, channels, size)
    if isinstance(image, Image.Image):
        im = ImageOps.exif_transpose(image) if image.getexif().get(0x0112, 1) != 1 else image
    elif isinstance(image, np.ndarray):
        im = _array_to_pil(image, "the NumPy array")
    elif isinstance(image, torch.Tensor):
        t = image.detach().cpu()
        if t.ndim == 4 and t.shape[0] == 1:
            t = t[0]
        if t.ndim == 3:
            if t.shape[0] not in (1, 3, 4):
                raise DataError(f"the tensor has shape {tuple(t.shape)}; expected C x H x W with C 1 or 3",
                                hint="permute an H x W x C tensor with .permute(2, 0, 1)")  # fmt: skip
            t = t.permute(1, 2, 0)
        im = _array_to_pil(t.numpy(), "the tensor")
    else:
        raise DataError(f"cannot use an object of type {type(image).__name__} as an image",
                        hint="pass a file path, a PIL image, a NumPy array or a tensor")  # fmt: skip
    return torch.from_numpy(_pil_to_array(im, channels, size).transpose(2, 0, 1).copy())


def probe_image(path: str | Path) -> tuple[str, tuple[int, int]]:
    """Mode and ``(H, W)`` (after EXIF orientation) from the file header, without decoding pixels."""
    p = str(path)
    try:
        with _open(p) as im:
            w, h = im.size
            if im.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # rotated by 90 degrees
                w, h = h, w
            return im.mode, (h, w)
    except BadImage:
        raise
    except Exception as e:
        raise BadImage(_reason(e, p)) from None


@contextlib.contextmanager
def _quiet_pil() -> Iterator[None]:
    """Silence PIL's notes on odd EXIF data or palettes (the file still decodes) while decoding.

    ``warnings.catch_warnings`` changes process-wide state, so only the main thread uses it.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def default_threads() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def _chunks(n: int, k: int) -> list[range]:
    return [range(i, min(i + k, n)) for i in range(0, n, k)]


def decode_files(
    paths: Sequence[str | Path],
    channels: int | None,
    size: tuple[int, int],
    threads: int | None = None,
    executor: Executor | None = None,
) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """Decode many files in parallel into one uint8 array ``N x C x H x W``.

    Returns the array and the files that failed as ``(index, reason)`` (their rows are zero).
    ``channels=None`` picks 1 when every decoded file is grey, otherwise 3 (grey images repeated).
    ``executor``: a thread pool to reuse (the streaming loader keeps one), else one is made.
    """
    n = len(paths)
    h, w = size
    c0 = channels or 3
    out = np.zeros((n, c0, h, w), dtype=np.uint8)
    gray = np.ones(n, dtype=bool)
    failed: list[tuple[int, str]] = []

    def work(rng: range) -> list[tuple[int, str]]:
        bad = []
        for i in rng:
            try:
                arr, g = decode_array(paths[i], channels, size)
            except BadImage as e:
                bad.append((i, e.reason))
                continue
            gray[i] = g
            out[i] = arr.transpose(2, 0, 1)  # broadcasts a grey image over 3 channels
        return bad

    threads = threads or default_threads()
    with _quiet_pil():
        if executor is None and (threads == 1 or n < 64):
            failed = work(range(n))
        else:
            chunks = _chunks(n, max(8, min(256, n // (threads * 4) or 1)))
            if executor is not None:
                for bad in executor.map(work, chunks):
                    failed += bad
            else:
                with ThreadPoolExecutor(threads) as ex:
                    for bad in ex.map(work, chunks):
                        failed += bad
    if channels is None:
        ok = np.ones(n, dtype=bool)
        ok[[i for i, _ in failed]] = False
        if ok.any() and gray[ok].all():
            out = np.ascontiguousarray(out[:, :1])
    return out, sorted(failed)


def probe_files(
    paths: Sequence[str | Path], threads: int | None = None
) -> tuple[list[tuple[str, tuple[int, int]] | None], list[tuple[int, str]]]:
    """:func:`probe_image` for many files in parallel: ``(mode, (H, W))`` or ``None`` per file, and failures."""
    res: list[tuple[str, tuple[int, int]] | None] = [None] * len(paths)

    def work(rng: range) -> list[tuple[int, str]]:
        bad = []
        for i in rng:
            try:
                res[i] = probe_image(paths[i])
            except BadImage as e:
                bad.append((i, e.reason))
        return bad

    failed: list[tuple[int, str]] = []
    with _quiet_pil(), ThreadPoolExecutor(threads or default_threads()) as ex:
        for bad in ex.map(work, _chunks(len(paths), 256)):
            failed += bad
    return res, sorted(failed)
