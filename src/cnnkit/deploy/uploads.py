"""Checking what a client sends before any pixel is decoded: size, type (from the bytes), pixel count.

Every refusal is a :class:`BadUpload` with the HTTP status and a message the client can act on; the
server answers it as JSON and keeps serving.
"""

from __future__ import annotations

import io
import warnings
from typing import Any

# Formats PIL may try; the type comes from the file's bytes (its magic number), never from its name
# or the client's Content-Type, which anyone can set to anything.
ALLOWED_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF", "PPM")


class BadUpload(Exception):
    """A request the server refuses: ``status`` (4xx), a message and a hint."""

    def __init__(self, status: int, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.status, self.message, self.hint = status, message, hint


def decode_upload(data: bytes, name: str, max_pixels: int) -> Any:
    """A fully decoded PIL image from uploaded bytes, or :class:`BadUpload` saying what is wrong."""
    from PIL import Image, UnidentifiedImageError

    label = repr(name) if name else "the upload"
    if not data:
        raise BadUpload(400, f"{label} is empty (0 bytes)", "send the image file's contents")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DecompressionBombWarning: the pixel limit below decides
            im = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except UnidentifiedImageError:
        raise BadUpload(415, f"{label} is not an image this server reads",
                        "send a PNG, JPEG, GIF, BMP, WebP, TIFF or PPM file") from None  # fmt: skip
    except Image.DecompressionBombError:
        raise BadUpload(
            413, f"{label} declares too many pixels to decode safely", "send a smaller image"
        ) from None
    except Exception as e:  # PIL plugins raise several types for a damaged header
        raise BadUpload(
            400, f"{label} is a damaged image ({type(e).__name__})", "send the file again"
        ) from None
    w, h = im.size
    if w * h > max_pixels:
        raise BadUpload(413, f"{label} is {w}x{h} pixels, more than this server's limit of {max_pixels:,}",
                        "resize it first; the network sees it at its own small input size anyway")  # fmt: skip
    try:
        im.load()  # decode everything now: truncated data fails here, not inside the network's batch
    except Exception as e:
        what = "truncated" if "truncat" in str(e).lower() else "damaged"
        raise BadUpload(
            400, f"{label} is a {what} {im.format} image ({str(e)[:80]})", "send the complete file"
        ) from None
    return im
